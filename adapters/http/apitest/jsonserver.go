package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"
)

// JSONServerVersion is the json-server the tests start: pinned, installed
// with npm into the user's cache directory once.
const JSONServerVersion = "0.17.4"

// requireNode returns the paths of node and npm, skipping t (failing it
// under LATTICE_REQUIRE_INTEGRATION=1) when they are missing.
func requireNode(t testing.TB) (node, npm string) {
	t.Helper()
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		missing(t, "node and npm are needed to run json-server (Debian: apt-get install nodejs npm)")
	}
	return node, npm
}

var installOnce sync.Mutex

// installJSONServer installs json-server into the cache directory and
// returns its directory.
func installJSONServer(t testing.TB, npm string) string {
	t.Helper()
	installOnce.Lock()
	defer installOnce.Unlock()
	dir := filepath.Join(cacheDir(), "json-server-"+JSONServerVersion)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "json-server", "lib", "cli", "bin.js")); err == nil {
		return dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(npm, "install", "--no-audit", "--no-fund", "--prefix", dir, "json-server@"+JSONServerVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install json-server@%s: %v\n%s", JSONServerVersion, err, out)
	}
	return dir
}

// cacheDir is where built and installed servers are kept.
func cacheDir() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "lattice")
}

// middleware is what the test's json-server runs before its router: it
// rejects a contact whose email has no @ with 422, as an API's validation
// would, answers 429 with Retry-After once for each file named
// throttle-N in its directory, and, while a file named stopping is there,
// answers 503 to every request but GET /db (JSONServer.Stop).
const middleware = `
const fs = require('fs'), path = require('path');
const bodyParser = require(%q);
const json = bodyParser.json({limit: '10mb'});
module.exports = (req, res, next) => {
  if (fs.existsSync(path.join(__dirname, 'stopping')) && !(req.method === 'GET' && req.path === '/db')) {
    return res.status(503).json({error: 'stopping'});
  }
  for (const f of fs.readdirSync(__dirname)) {
    if (f.startsWith('throttle-')) {
      fs.unlinkSync(path.join(__dirname, f));
      res.set('Retry-After', '1');
      return res.status(429).json({error: 'slow down'});
    }
  }
  json(req, res, () => {
    if ((req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') && req.body &&
        typeof req.body.email === 'string' && !req.body.email.includes('@')) {
      return res.status(422).json({error: 'email: must contain @'});
    }
    next();
  });
};
`

// JSONServer is a running json-server on a free port of 127.0.0.1. Its
// middleware rejects a record whose email field is a string without @ with
// 422, as an API's validation would.
type JSONServer struct {
	// URL is the server's root, e.g. http://127.0.0.1:41234.
	URL string

	t    testing.TB
	node string
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
}

// StartJSONServer starts json-server with db (collection name to records)
// and stops it when t ends. It skips t unless LATTICE_INTEGRATION=1 and
// Node.js and npm are installed.
func StartJSONServer(t testing.TB, db map[string][]map[string]any) *JSONServer {
	t.Helper()
	requireIntegration(t)
	node, npm := requireNode(t)
	inst := installJSONServer(t, npm)
	dir := t.TempDir()
	b, err := json.Marshal(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "db.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	mw := fmt.Sprintf(middleware, filepath.Join(inst, "node_modules", "body-parser"))
	if err := os.WriteFile(filepath.Join(dir, "mw.js"), []byte(mw), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s := &JSONServer{t: t, node: node, bin: filepath.Join(inst, "node_modules", "json-server", "lib", "cli", "bin.js"),
		dir: dir, port: port, URL: "http://127.0.0.1:" + strconv.Itoa(port)}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server (again) on its port and waits until it answers.
func (s *JSONServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.node, s.bin, "--host", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--middlewares", filepath.Join(s.dir, "mw.js"), "--quiet", filepath.Join(s.dir, "db.json"))
	s.cmd.SysProcAttr = procAttr()
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	if err := waitReady(s.URL+"/db", 30*time.Second); err != nil {
		s.t.Fatalf("json-server did not start: %v\n%s", err, out.String())
	}
}

// Stop stops the server; its db.json keeps every write it answered.
// json-server's command line writes db.json asynchronously, and a write
// lost at the kill would come back as a change when the server restarts
// (a deleted record reappearing). So Stop first refuses every request
// (503, as a server going down would), waits until the file holds what the
// server serves, twice in a row, and only then kills it.
func (s *JSONServer) Stop() {
	if s.cmd == nil {
		return
	}
	stopping := filepath.Join(s.dir, "stopping")
	if err := os.WriteFile(stopping, nil, 0o644); err == nil {
		deadline := time.Now().Add(10 * time.Second)
		for n := 0; n < 2 && time.Now().Before(deadline); {
			if s.flushed() {
				n++
			} else {
				n = 0
			}
			time.Sleep(20 * time.Millisecond)
		}
		defer os.Remove(stopping)
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// flushed reports whether db.json holds what the server serves.
func (s *JSONServer) flushed() bool {
	resp, err := nethttp.Get(s.URL + "/db")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var served, stored any
	if json.NewDecoder(resp.Body).Decode(&served) != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "db.json"))
	if err != nil || json.Unmarshal(b, &stored) != nil {
		return false
	}
	return reflect.DeepEqual(served, stored)
}

// Throttle makes the server answer the next request with 429 and
// Retry-After: 1.
func (s *JSONServer) Throttle() {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.dir, "throttle-"+strconv.FormatInt(time.Now().UnixNano(), 10)), nil, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// Do sends a request as another client of the API would and decodes the
// JSON response into out (nil: discarded); it fails t unless the status is
// want.
func (s *JSONServer) Do(method, path string, body any, want int, out any) {
	s.t.Helper()
	do(s.t, method, s.URL+path, nil, body, want, out)
}

// Records returns a collection's records by ID.
func (s *JSONServer) Records(coll string) map[string]map[string]any {
	s.t.Helper()
	var recs []map[string]any
	s.Do("GET", "/"+coll, nil, 200, &recs)
	return byID(recs)
}

func byID(recs []map[string]any) map[string]map[string]any {
	out := make(map[string]map[string]any, len(recs))
	for _, r := range recs {
		out[fmt.Sprint(r["id"])] = r
	}
	return out
}

package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The json-server the integration tests start: pinned, installed with npm
// into the user's cache directory once.
const jsonServerVersion = "0.17.4"

// requireIntegration skips t unless LATTICE_INTEGRATION=1, and returns the
// paths of node and npm. Missing binaries skip t too, unless
// LATTICE_REQUIRE_INTEGRATION=1 makes that a failure.
func requireIntegration(t *testing.T) (node, npm string) {
	t.Helper()
	if os.Getenv("LATTICE_INTEGRATION") != "1" {
		t.Skip("integration test: set LATTICE_INTEGRATION=1 to run it")
	}
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		msg := "node and npm are needed to run json-server (Debian: apt-get install nodejs npm)"
		if os.Getenv("LATTICE_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node, npm
}

var installOnce sync.Mutex

// installJSONServer installs json-server into the cache directory and
// returns its directory.
func installJSONServer(t *testing.T, npm string) string {
	t.Helper()
	installOnce.Lock()
	defer installOnce.Unlock()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "lattice", "json-server-"+jsonServerVersion)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "json-server", "lib", "cli", "bin.js")); err == nil {
		return dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(npm, "install", "--no-audit", "--no-fund", "--prefix", dir, "json-server@"+jsonServerVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install json-server@%s: %v\n%s", jsonServerVersion, err, out)
	}
	return dir
}

// middleware is what the test's json-server runs before its router: it
// rejects a contact whose email has no @ with 422, as an API's validation
// would, and answers 429 with Retry-After once for each file named
// throttle-N in its directory.
const middleware = `
const fs = require('fs'), path = require('path');
const bodyParser = require(%q);
const json = bodyParser.json({limit: '10mb'});
module.exports = (req, res, next) => {
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

// jsonServer is a running json-server on a free port.
type jsonServer struct {
	t    *testing.T
	node string
	bin  string
	dir  string
	port int
	URL  string
	cmd  *exec.Cmd
}

// startJSONServer starts json-server with db (collection name to records)
// and stops it when t ends.
func startJSONServer(t *testing.T, db map[string][]map[string]any) *jsonServer {
	t.Helper()
	node, npm := requireIntegration(t)
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &jsonServer{t: t, node: node, bin: filepath.Join(inst, "node_modules", "json-server", "lib", "cli", "bin.js"),
		dir: dir, port: port, URL: "http://127.0.0.1:" + strconv.Itoa(port)}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server (again) on its port and waits until it answers.
func (s *jsonServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.node, s.bin, "--host", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--middlewares", filepath.Join(s.dir, "mw.js"), "--quiet", filepath.Join(s.dir, "db.json"))
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := nethttp.Get(s.URL + "/db")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("json-server did not start: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server; its db.json keeps the records.
func (s *jsonServer) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Throttle makes the server answer the next request with 429 and
// Retry-After: 1.
func (s *jsonServer) Throttle() {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.dir, "throttle-"+strconv.FormatInt(time.Now().UnixNano(), 10)), nil, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// Do sends a request as another client of the API would and decodes the
// JSON response into out (nil: discarded); it fails t unless the status is
// want.
func (s *jsonServer) Do(method, path string, body any, want int, out any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := nethttp.NewRequestWithContext(context.Background(), method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// Records returns a collection's records by ID.
func (s *jsonServer) Records(coll string) map[string]map[string]any {
	s.t.Helper()
	var recs []map[string]any
	s.Do("GET", "/"+coll, nil, 200, &recs)
	out := map[string]map[string]any{}
	for _, r := range recs {
		out[fmt.Sprint(r["id"])] = r
	}
	return out
}

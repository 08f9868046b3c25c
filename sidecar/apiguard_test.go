package sidecar

import (
	"bufio"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
)

// rawRequest sends one request line and headers as written, for requests
// that net/http's client refuses to build, and returns the status code.
func rawRequest(t *testing.T, a *Agent, method, target string, header ...string) int {
	t.Helper()
	c, err := net.Dial("tcp", a.APIAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := method + " " + target + " HTTP/1.1\r\nHost: " + a.APIAddr() + "\r\nConnection: close\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func randomToken(r *rand.Rand, n int) string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b strings.Builder
	for range n {
		b.WriteByte(letters[r.IntN(len(letters))])
	}
	return b.String()
}

// Requests with made-up methods and paths, answered 404 or 405, do not add
// metric labels: /metrics stays the same size.
func TestAPIMetricLabelsAreBounded(t *testing.T) {
	a := startAgent(t, nil)
	r := rand.New(rand.NewPCG(1, 2))
	metricsSize := func() int {
		res := do(t, a, "GET", "/metrics", "", "")
		if res.code != http.StatusOK {
			t.Fatalf("GET /metrics = %d %s", res.code, res.body)
		}
		return len(res.body)
	}
	// One request of each kind first, so that the label sets they use
	// exist before the baseline is taken.
	send := func() {
		if code := rawRequest(t, a, randomToken(r, 30<<10), "/v1/status"); code != http.StatusMethodNotAllowed {
			t.Fatalf("random method: %d, want 405", code)
		}
		if code := rawRequest(t, a, "GET", "/"+randomToken(r, 30<<10)); code != http.StatusNotFound {
			t.Fatalf("random path: %d, want 404", code)
		}
		if code := rawRequest(t, a, "GET", "/v1/records/"+randomToken(r, 30<<10)+"/1"); code != http.StatusNotFound {
			t.Fatalf("random collection: %d, want 404", code)
		}
	}
	send()
	before := metricsSize()
	for range 100 {
		send()
	}
	after := metricsSize()
	t.Logf("/metrics: %d bytes before, %d after 300 requests of 30 KB", before, after)
	// Counters gain digits and the Go runtime's figures move; a label
	// taken from a request would add 30 KB.
	if after-before > 2<<10 {
		t.Fatalf("/metrics grew from %d to %d bytes", before, after)
	}
	res := do(t, a, "GET", "/metrics", "", "")
	for _, want := range []string{
		`lattice_api_requests_total{code="405",method="other",route="other"} 101`,
		`lattice_api_requests_total{code="404",method="GET",route="other"} 101`,
		`lattice_api_requests_total{code="404",method="GET",route="/v1/records/{collection}/{key}"} 101`,
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// send sends a request with the given headers ("Host" sets the Host
// header) and returns the status code.
func send(t *testing.T, a *Agent, method, path, body string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+a.APIAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// A request reaching the API under a name it does not know, as after DNS
// rebinding, is refused with 421 and writes nothing; loopback names and
// api.allowed_hosts are accepted.
func TestAPIHostCheck(t *testing.T) {
	a := startAgent(t, func(c *Config) {
		customersConfig(c)
		c.API.AllowedHosts = []string{"Lattice.Example.com"}
	})
	_, port, _ := net.SplitHostPort(a.APIAddr())
	json := map[string]string{"Content-Type": "application/json"}
	with := func(h map[string]string, host string) map[string]string {
		out := map[string]string{"Host": host}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		host string
		want int
	}{
		{"rebind.attacker.example", http.StatusMisdirectedRequest},
		{"rebind.attacker.example:" + port, http.StatusMisdirectedRequest},
		{"127.0.0.1.attacker.example", http.StatusMisdirectedRequest},
		{"localhost.attacker.example", http.StatusMisdirectedRequest},
		{"10.9.8.7:" + port, http.StatusMisdirectedRequest},
		{"localhost:" + port, http.StatusOK},
		{"127.0.0.1:" + port, http.StatusOK},
		{"127.1.2.3", http.StatusOK},
		{"[::1]:" + port, http.StatusOK},
		{"lattice.example.com:" + port, http.StatusOK},
		{"LATTICE.example.com.", http.StatusOK},
	} {
		if got := send(t, a, "PUT", "/v1/records/customers/1", `{"name":"x"}`, with(json, tc.host)); got != tc.want {
			t.Errorf("PUT with Host %q = %d, want %d", tc.host, got, tc.want)
		}
	}
	if got := send(t, a, "DELETE", "/v1/records/customers/1", "", with(nil, "localhost")); got != http.StatusNoContent {
		t.Fatalf("DELETE = %d", got)
	}
	if got := send(t, a, "PUT", "/v1/records/customers/2", `{"name":"x"}`, with(json, "rebind.attacker.example")); got != http.StatusMisdirectedRequest {
		t.Fatalf("rebound PUT = %d", got)
	}
	if res := do(t, a, "GET", "/v1/records/customers/2", "", ""); res.code != http.StatusNotFound {
		t.Fatalf("a refused write was stored: %d %s", res.code, res.body)
	}
	if got := send(t, a, "GET", "/healthz", "", with(nil, "rebind.attacker.example")); got != http.StatusMisdirectedRequest {
		t.Fatalf("GET /healthz under a foreign host = %d", got)
	}
}

// The address a request arrived on is accepted as its Host (what a client
// that dials an IP sends); other addresses are not.
func TestAPIHostArrivalAddress(t *testing.T) {
	g := newGuard(APIConfig{}, "")
	local := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 7070}
	for host, want := range map[string]bool{
		"10.1.2.3:7070": true, "10.1.2.3": true, "10.1.2.4:7070": false,
		"[::ffff:10.1.2.3]:7070": true, "example.com": false, "": false,
	} {
		if got := g.allowed(host, local); got != want {
			t.Errorf("allowed(%q) = %v, want %v", host, got, want)
		}
	}
	if !newGuard(APIConfig{AllowedHosts: []string{"*"}}, "").allowed("anything.example", nil) {
		t.Error(`"*" does not accept any host`)
	}
}

// Without a token, a request from a foreign Origin is refused; with a
// token it is the token that decides.
func TestAPIOriginCheck(t *testing.T) {
	open := startAgent(t, customersConfig)
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"https://evil.example", http.StatusForbidden},
		{"http://evil.example:" + "7070", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"file://", http.StatusForbidden},
		{"http://localhost:3000", http.StatusOK},
		{"http://127.0.0.1:8080", http.StatusOK},
		{"", http.StatusOK},
	} {
		h := map[string]string{"Content-Type": "application/json"}
		if tc.origin != "" {
			h["Origin"] = tc.origin
		}
		if got := send(t, open, "POST", "/v1/parked/requeue", "", h); got != tc.want {
			t.Errorf("POST requeue with Origin %q = %d, want %d", tc.origin, got, tc.want)
		}
	}
	h := map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}
	if got := send(t, open, "PUT", "/v1/records/customers/1", `{"name":"x"}`, h); got != http.StatusForbidden {
		t.Fatalf("cross-site PUT = %d", got)
	}
	if res := do(t, open, "GET", "/v1/records/customers/1", "", ""); res.code != http.StatusNotFound {
		t.Fatalf("a refused write was stored: %d %s", res.code, res.body)
	}

	const token = "0123456789abcdef-token"
	closed := startAgent(t, func(c *Config) { c.API.Token = token })
	h["Authorization"] = "Bearer " + token
	if got := send(t, closed, "POST", "/v1/parked/requeue", "", h); got != http.StatusOK {
		t.Fatalf("POST requeue with the token and a foreign Origin = %d, want 200", got)
	}
	delete(h, "Authorization")
	if got := send(t, closed, "POST", "/v1/parked/requeue", "", h); got != http.StatusUnauthorized {
		t.Fatalf("POST requeue without the token = %d, want 401", got)
	}
}

// Writes must say they are JSON, which an HTML form cannot.
func TestAPIWritesNeedJSON(t *testing.T) {
	a := startAgent(t, customersConfig)
	for _, tc := range []struct {
		method, path, body, ctype string
		want                      int
	}{
		{"PUT", "/v1/records/customers/1", `{"name":"x"}`, "text/plain", http.StatusUnsupportedMediaType},
		{"PUT", "/v1/records/customers/1", `{"name":"x"}`, "", http.StatusUnsupportedMediaType},
		{"PATCH", "/v1/records/customers/1", `{"name":"x"}`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"POST", "/v1/parked/requeue", "a=b", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"POST", "/v1/parked/requeue", "", "multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
		{"PUT", "/v1/records/customers/1", `{"name":"x"}`, "application/json; charset=utf-8", http.StatusOK},
		{"POST", "/v1/parked/requeue", "", "application/json", http.StatusOK},
	} {
		h := map[string]string{}
		if tc.ctype != "" {
			h["Content-Type"] = tc.ctype
		}
		if got := send(t, a, tc.method, tc.path, tc.body, h); got != tc.want {
			t.Errorf("%s %s with Content-Type %q = %d, want %d", tc.method, tc.path, tc.ctype, got, tc.want)
		}
		if tc.want == http.StatusUnsupportedMediaType && tc.method != "POST" {
			if res := do(t, a, "GET", tc.path, "", ""); res.code != http.StatusNotFound {
				t.Fatalf("a refused write was stored: %d %s", res.code, res.body)
			}
		}
	}
	// The Go client says JSON on every request, with or without a body.
	c, _ := NewClient(a.APIAddr(), "", "")
	if err := c.Do(context.Background(), "POST", "/v1/parked/requeue", nil, nil); err != nil {
		t.Fatal(err)
	}
}

package sidecar

import (
	"bufio"
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

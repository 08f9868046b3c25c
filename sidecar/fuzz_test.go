package sidecar

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzAPIRecords sends arbitrary record requests to a real agent's handler:
// whatever the method, path and body, the answer is a client error or a
// success, never a server error, and always well-formed.
func FuzzAPIRecords(f *testing.F) {
	for _, seed := range []struct {
		method          uint8
		coll, key, body string
	}{
		{0, "customers", "1", `{"name":"a","tags":["x"]}`},
		{1, "customers", "1", `{"tags":{"add":["y"],"remove":["x"]},"seen":"2026-01-01T00:00:00Z"}`},
		{1, "customers", "2", `{"tags":{"add":[[1]]}}`},
		{0, "customers", "x,y", `{"name":null}`},
		{2, "customers", "1", ``},
		{3, "customers", "1", ``},
		{0, "things", `a\,b`, `{"doc":{"k":[1,2,{"z":null}]},"n":1e400}`},
		{1, "things", "k", `{"a":"\ud800","b":-0.0,"c":9223372036854775808}`},
		{0, "bad/name", "k", `{}`},
		{4, "customers", "", ``},
	} {
		f.Add(seed.method, seed.coll, seed.key, seed.body)
	}
	a := startAgent(f, customersConfig)
	h := a.handler()
	methods := []string{"PUT", "PATCH", "GET", "DELETE", "GET"}
	f.Fuzz(func(t *testing.T, m uint8, coll, key, body string) {
		method := methods[int(m)%len(methods)]
		path := "/v1/records/" + url.PathEscape(coll)
		if int(m)%len(methods) != 4 {
			path += "/" + url.PathEscape(key)
		} else if key != "" {
			path += "?after=" + url.QueryEscape(key)
		}
		req := httptest.NewRequest(method, "http://127.0.0.1"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q = %d %s", method, path, body, w.Code, w.Body)
		}
		// Paths with empty or dot segments get the mux's redirect to the
		// cleaned path, which is not an API answer.
		redirect := w.Code >= 300 && w.Code < 400
		if w.Code != http.StatusNoContent && !redirect && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s: answer is not JSON: %q", method, path, w.Body)
		}
	})
}

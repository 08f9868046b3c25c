package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The list request carries the collection and the after key escaped, so a
// key holding '&', '#' or spaces asks for the page it names.
func TestGetListEscapes(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"records":[]}`))
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"get", "--api", srv.URL, "--after", "a&b #c", "--limit", "7", "my things"}, &out, &errOut)
	if err != nil {
		t.Fatalf("get: %v (%s)", err, errOut.String())
	}
	if got == nil {
		t.Fatal("no request")
	}
	if got.URL.Path != "/v1/records/my things" || got.URL.Query().Get("after") != "a&b #c" || got.URL.Query().Get("limit") != "7" {
		t.Fatalf("request %s", got.URL)
	}
}

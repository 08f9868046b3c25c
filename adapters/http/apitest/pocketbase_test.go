package apitest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestIntegrationPocketBase(t *testing.T) {
	hooks := t.TempDir()
	// A hook proves the jsvm plugin loads pb_hooks files.
	js := `routerAdd("GET", "/hello", (e) => e.json(200, {"hello": "world"}))`
	if err := os.WriteFile(filepath.Join(hooks, "hello.pb.js"), []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	p := StartPocketBase(t, PocketBaseOptions{HooksDir: hooks})
	var hello map[string]string
	p.Do("GET", "/hello", nil, 200, &hello)
	if hello["hello"] != "world" {
		t.Fatalf("hook answered %v", hello)
	}
	p.CreateCollection("notes", Field{"name": "text", "type": "text"})
	var rec map[string]any
	p.Do("POST", "/api/collections/notes/records", map[string]any{"text": "a"}, 200, &rec)
	p.Restart()
	if got := p.Records("notes"); len(got) != 1 || got[rec["id"].(string)]["text"] != "a" {
		t.Fatalf("after a restart: %v, want the record %v", got, rec)
	}
	old := p.Token()
	p.SetPassword("another-password")
	do(t, "GET", p.URL+"/api/collections/notes/records", map[string][]string{"Authorization": {old}}, nil, 403, nil)
	if p.Token() == old {
		t.Fatal("no new token after the password change")
	}
	p.Do("GET", "/api/collections/notes/records", nil, 200, nil)
}

func TestIntegrationJSONServer(t *testing.T) {
	s := StartJSONServer(t, map[string][]map[string]any{"notes": {{"id": "1", "text": "a"}}})
	if got := s.Records("notes"); got["1"]["text"] != "a" {
		t.Fatalf("records %v", got)
	}
}

// TestBuildPocketBase only builds the server (make pocketbase), so that CI
// builds it before the integration tests and outside their timeout.
func TestBuildPocketBase(t *testing.T) {
	requireIntegration(t)
	t.Log(BuildPocketBase(t))
}

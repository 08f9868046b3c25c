package demo

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The demo passes: its own checks compare the three databases with each
// other and with their sidecars' merged states, and count writes.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), Options{Dir: t.TempDir(), Out: &out}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "No update war.") {
		t.Fatalf("the demo did not report its write counts:\n%s", out.String())
	}
}

// The update-war check allows what the design allows and nothing more.
func TestWriteCountCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    writeCount
		war  bool
	}{
		{"each change once", writeCount{fromUsers: 3, fromLattice: 11, elsewhere: 11, captured: 3}, false},
		// web in a run that the first version of this check failed: one
		// merged value written back after it crossed web's own change.
		{"one write-back", writeCount{fromUsers: 1, fromLattice: 12, elsewhere: 11, captured: 1}, false},
		{"a write-back per change elsewhere", writeCount{fromUsers: 3, fromLattice: 22, elsewhere: 11, captured: 3}, false},
		{"more writes than the design allows", writeCount{fromUsers: 3, fromLattice: 23, elsewhere: 11, captured: 3}, true},
		{"own writes captured back", writeCount{fromUsers: 3, fromLattice: 11, elsewhere: 11, captured: 4}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.w.system = "web"
			if err := tc.w.check(); (err != nil) != tc.war {
				t.Fatalf("check() = %v, want war %v", err, tc.war)
			}
		})
	}
}

// With Keep the cluster stays up after the scenes: each console answers,
// takes the token the demo wrote, and shows the three members; the demo
// ends when its context does.
func TestRunKeep(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var consoles []string
	err := Run(ctx, Options{Dir: dir, Out: &out, Keep: true, Ready: func(c []string) {
		consoles = c
		defer cancel()
		tok, err := os.ReadFile(filepath.Join(dir, "api.token"))
		if err != nil {
			t.Error(err)
			return
		}
		jar, _ := cookiejar.New(nil)
		cl := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		for _, u := range c {
			resp, err := cl.PostForm(strings.TrimSuffix(u, "/ui/")+"/ui/login", url.Values{"token": {strings.TrimSpace(string(tok))}})
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || strings.Count(string(body), `<tr class="member">`) != 3 {
				t.Errorf("console %s after login: %d\n%.3000s", u, resp.StatusCode, body)
			}
		}
	}})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if len(consoles) != 3 {
		t.Fatalf("consoles = %v", consoles)
	}
	for _, want := range append([]string{"The cluster stays up", filepath.Join(dir, "api.token"), "Stopping."}, consoles...) {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}

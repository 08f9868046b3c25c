package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// envArtifacts names a directory for the screenshots of the browser test
// (default: a temporary directory).
const envArtifacts = "LATTICE_ARTIFACTS"

// chromium returns the path of a headless-capable Chromium, skipping the
// test outside make test-integration and without a browser (failing then
// under LATTICE_REQUIRE_INTEGRATION=1).
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("LATTICE_INTEGRATION") != "1" {
		t.Skip("a browser test: set LATTICE_INTEGRATION=1 (make test-integration)")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("LATTICE_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("LATTICE_REQUIRE_INTEGRATION=1 but no chromium on PATH (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH (apt-get install chromium)")
	return ""
}

// TestIntegrationConsoleInBrowser drives the web console in headless
// Chromium against three agents: log in, see three members, see a record
// that one database refuses parked with the database's error, fix the
// database, retry from the page, find the row in the database, open the
// record's page, find a write made behind capture's back from the drift
// page, resolve a conflict from the conflict log; every page is saved as a
// screenshot.
func TestIntegrationConsoleInBrowser(t *testing.T) {
	browserPath := chromium(t)
	shots := os.Getenv(envArtifacts)
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	c, nodes := startParkingCluster(t, 3)
	n1, n3 := nodes[0], nodes[2]
	// Two rows that reach every database, for the pages to show.
	for id, name := range map[int]string{1: "anvil", 2: "bellows"} {
		if _, err := n1.db.Exec(`INSERT INTO items(id, name, status, tags) VALUES (?, ?, 'new', '["forge"]')`, id, name); err != nil {
			t.Fatal(err)
		}
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browserPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelTab()
	// The first run starts the browser and binds it to its context: that
	// must be the tab's own, not a step's with a deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", browserPath, err)
	}

	base := "http://" + n3.api
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for i, a := range actions {
			actx, cancel := context.WithTimeout(ctx, time.Minute)
			err := chromedp.Do(actx, a)
			cancel()
			if err != nil {
				// Keep what the browser showed, for the failure's reader.
				if png, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100)); serr == nil {
					_ = os.WriteFile(filepath.Join(shots, "failure.png"), png, 0o644)
				}
				t.Fatalf("%s, step %d: %v (the page is in %s)", what, i+1, err, filepath.Join(shots, "failure.png"))
			}
		}
	}
	// text reads the text of the first element sel matches.
	text := func(what, sel string) string {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return s
	}
	// eval polls a JavaScript expression in the page until it is true.
	waitJS := func(what, expr string) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() (bool, string) {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
			if err != nil {
				return false, err.Error()
			}
			return ok, "not yet"
		})
	}

	// Log in; the page then shows the cluster with three live members.
	run("open the login page",
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		shot("login"),
		chromedp.SendKeys(chromedp.CSS(`#token`), c.token),
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`#members`)),
	)
	waitJS("three live members on the cluster page", `(() => {
		const rows = [...document.querySelectorAll('#members tr.member')];
		return rows.length === 3 && rows.every(r => r.textContent.includes('alive'));
	})()`)
	members := text("read the members", `#members`)
	for _, n := range nodes {
		if !strings.Contains(members, n.name) {
			t.Fatalf("members table lacks %s:\n%s", n.name, members)
		}
	}
	// The histogram fills in as changes merge here.
	waitFor(t, 60*time.Second, "the anvil and bellows rows in n3's database", func() (bool, string) {
		name, err := itemName(n3.db, 2)
		return err == nil && name == "bellows", fmt.Sprintf("%q %v", name, err)
	})
	run("cluster page with the histogram",
		chromedp.Navigate(base+"/ui/?refresh=0"),
		chromedp.WaitVisible(chromedp.CSS(`#propagation`)),
		shot("cluster"),
	)

	// A record n3's database refuses is parked there with the error.
	if _, err := n1.db.Exec(`INSERT INTO items(id, name, status) VALUES (42, 'bad-42', 'rejected on n3')`); err != nil {
		t.Fatal(err)
	}
	waitParked(t, n3.agent, 1)
	const row = `tr.parked-row[data-key="items/42"]`
	run("the parked page shows the record",
		chromedp.Navigate(base+"/ui/parked?refresh=0"),
		chromedp.WaitVisible(chromedp.CSS(row)),
		shot("parked"),
	)
	errText := text("read the parked error", row+` td.err`)
	if !strings.Contains(errText, "items named bad... are refused here") {
		t.Fatalf("parked row shows %q, want the database's error", errText)
	}
	if name, err := itemName(n3.db, 42); err != nil || name != "(absent)" {
		t.Fatalf("n3 item 42 = %q, %v before the fix; want absent", name, err)
	}

	// Fix the database, retry from the page, and read the row with SQL.
	if _, err := n3.db.Exec(`DROP TRIGGER refuse_bad`); err != nil {
		t.Fatal(err)
	}
	run("retry from the page",
		chromedp.Click(chromedp.CSS(row+` button.retry`)),
		chromedp.WaitVisible(chromedp.CSS(`#notice`)),
	)
	waitFor(t, 60*time.Second, "item 42 in n3's database", func() (bool, string) {
		name, err := itemName(n3.db, 42)
		return err == nil && name == "bad-42", fmt.Sprintf("%q %v", name, err)
	})
	run("the parked list empties",
		chromedp.Navigate(base+"/ui/parked?refresh=0"),
		chromedp.WaitVisible(chromedp.CSS(`#none-parked`)),
		shot("parked-after-retry"),
	)

	// The record's page: each field, who wrote it, when, under which rule.
	run("the record's page",
		chromedp.Navigate(base+"/ui/records/items/42?refresh=0"),
		chromedp.WaitVisible(chromedp.CSS(`#fields`)),
		shot("record"),
	)
	fields := text("read the fields", `#fields`)
	for _, want := range []string{"bad-42", "rejected on n3", "lww", "n1"} {
		if !strings.Contains(fields, want) {
			t.Fatalf("record page lacks %q:\n%s", want, fields)
		}
	}

	// Drift: a write into n3's database that capture does not see (made
	// inside the adapter's echo guard, as only an apply would) is found by a
	// report-only pass run from the drift page. The periodic pass (every
	// 5 minutes) has not run yet, so nothing repairs it first.
	tx, err := n3.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`INSERT OR REPLACE INTO _lattice_apply(x) VALUES(1)`, `UPDATE items SET status = 'drifted' WHERE id = 1`, `DELETE FROM _lattice_apply`} {
		if _, err := tx.Exec(q); err != nil {
			_ = tx.Rollback()
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	run("verify from the drift page",
		chromedp.Navigate(base+"/ui/drift?refresh=0"),
		chromedp.WaitVisible(chromedp.CSS(`#verify-now`)),
		chromedp.Click(chromedp.CSS(`#verify-now`)),
		chromedp.WaitVisible(chromedp.CSS(`#drift`)),
		shot("drift"),
	)
	if drift := text("read the drift", `#drift`); !strings.Contains(drift, "items/1") || !strings.Contains(drift, `"drifted"`) || !strings.Contains(drift, `"new"`) {
		t.Fatalf("drift table lacks items/1 with its system and merged status:\n%s", drift)
	}

	// A conflict: n1's and n2's users rename item 2 while n2's sidecar is
	// down, so neither write saw the other. n3 logs the conflict; the
	// console resolves it by writing the lost name again, which then wins in
	// every database.
	n2 := nodes[1]
	n2.stop(30 * time.Second)
	if _, err := n1.db.Exec(`UPDATE items SET name = 'bellows-n1' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "n1's name in n3's database", func() (bool, string) {
		name, err := itemName(n3.db, 2)
		return err == nil && name == "bellows-n1", fmt.Sprintf("%q %v", name, err)
	})
	if _, err := n2.db.Exec(`UPDATE items SET name = 'bellows-n2' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	n2.start(60 * time.Second)
	waitFor(t, 60*time.Second, "n2's later name in every database", func() (bool, string) {
		for _, n := range nodes {
			if name, err := itemName(n.db, 2); err != nil || name != "bellows-n2" {
				return false, fmt.Sprintf("%s: %q %v", n.name, name, err)
			}
		}
		return true, ""
	})
	const open = `tr.conflict`
	run("the conflict on the conflicts page",
		chromedp.Navigate(base+"/ui/conflicts?refresh=0&collection=items&key=2"),
		chromedp.WaitVisible(chromedp.CSS(open)),
		shot("conflicts"),
	)
	if row := text("read the conflict", open); !strings.Contains(row, "bellows-n1") || !strings.Contains(row, "bellows-n2") || !strings.Contains(row, "lww") {
		t.Fatalf("conflict row lacks both names and the rule:\n%s", row)
	}
	run("resolve with the lost value",
		chromedp.Click(chromedp.CSS(open+` button[value="loser"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#notice`)),
	)
	waitFor(t, 60*time.Second, "the lost name again in every database", func() (bool, string) {
		for _, n := range nodes {
			if name, err := itemName(n.db, 2); err != nil || name != "bellows-n1" {
				return false, fmt.Sprintf("%s: %q %v", n.name, name, err)
			}
		}
		return true, ""
	})

	// The other pages render; each is kept as a screenshot.
	for _, p := range []struct{ path, sel, name string }{
		{"/ui/node", `#loops`, "node"},
		{"/ui/collections", `#collections`, "collections"},
		{"/ui/collections/items", `#records`, "records"},
	} {
		run("page "+p.path,
			chromedp.Navigate(base+p.path+"?refresh=0"),
			chromedp.WaitVisible(chromedp.CSS(p.sel)),
			shot(p.name),
		)
	}
	run("the collections page again", chromedp.Navigate(base+"/ui/collections?refresh=0"), chromedp.WaitVisible(chromedp.CSS(`#collections`)))
	count := text("record counts", `#collections td.records`)
	if strings.TrimSpace(count) != "3" {
		t.Fatalf("items holds %q records on the collections page, want 3", count)
	}
	t.Logf("screenshots in %s", shots)
	cancelTab()
	cancelAlloc()
	c.stopAll(30 * time.Second)
}

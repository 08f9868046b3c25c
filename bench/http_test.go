package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	_ "github.com/lattice-crdt/lattice/adapters/http" // the CRM's adapter
	"github.com/lattice-crdt/lattice/adapters/http/apitest"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
	"github.com/lattice-crdt/lattice/sidecar"
)

// door is a reverse proxy in front of an API server that records when each
// request arrived: the requests a sidecar sent, counted at the server's
// door.
type door struct {
	URL string
	mu  sync.Mutex
	at  []time.Time
}

func startDoor(tb testing.TB, target string) *door {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	d := &door{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		d.mu.Lock()
		d.at = append(d.at, time.Now())
		d.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	d.URL = srv.URL
	return d
}

// count returns the number of requests so far.
func (d *door) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.at)
}

// busiest returns the most requests within one second, over windows that
// start at a request.
func (d *door) busiest() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	most := 0
	for i := range d.at {
		n := 0
		for j := i; j < len(d.at) && d.at[j].Sub(d.at[i]) < time.Second; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

// pocketBaseERP is a CRM in PocketBase and an ERP in PostgreSQL, each
// beside a sidecar, keeping contacts in sync through mappings and ID maps:
// node 0 reaches PocketBase through the http adapter (pocketbase preset,
// default poll interval) and a counting proxy; node 1 is the ERP, whose
// customers(customer_no identity, full_name, email, phone_number, state
// 'L'|'C'|'X') table the test reads and writes with SQL. The benchmarks
// read and write PocketBase straight, as its users do, not through the
// proxy.
type pocketBaseERP struct {
	*Cluster
	pb   *apitest.PocketBase
	erp  *pgx.Conn
	door *door
}

// pocketBaseOptions configure a pocketBaseERP.
type pocketBaseOptions struct {
	db       string // the ERP's database, created on the server
	webhooks bool   // PocketBase announces its changes with the shipped pb_hooks files
	rate     int    // the CRM's request budget per second (0: the default, 10)
}

// startPocketBaseERP starts PocketBase with a contacts collection holding
// one contact named Sample, creates the ERP's table in a database of srv,
// and starts the two sidecars; it returns once the ERP holds Sample.
func startPocketBaseERP(b *testing.B, srv *pgtest.Server, o pocketBaseOptions) *pocketBaseERP {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	secret := write("webhook.secret", "0123456789abcdef0123456789abcdef")
	var hooks, apiAddr string
	if o.webhooks {
		// PocketBase reads where to send from its environment at start,
		// so the CRM sidecar's API address is chosen first.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		apiAddr = l.Addr().String()
		_ = l.Close()
		b.Setenv("LATTICE_WEBHOOK_URL", "http://"+apiAddr+"/v1/webhooks")
		b.Setenv("LATTICE_WEBHOOK_SECRET_FILE", secret)
		if hooks, err = filepath.Abs(filepath.Join("..", "adapters", "http", "webhooks", "pocketbase")); err != nil {
			b.Fatal(err)
		}
	}
	pb := apitest.StartPocketBase(b, apitest.PocketBaseOptions{HooksDir: hooks})
	pb.CreateCollection("contacts",
		apitest.Field{"name": "name", "type": "text", "required": true},
		apitest.Field{"name": "email", "type": "email"},
		apitest.Field{"name": "phone", "type": "text"},
		apitest.Field{"name": "status", "type": "select", "values": []string{"lead", "customer", "churned"}, "maxSelect": 1})
	pb.Do("POST", "/api/collections/contacts/records",
		map[string]any{"name": "Sample", "email": "sample@example.com", "phone": "+1 555 0100", "status": "lead"}, 200, nil)
	d := startDoor(b, pb.URL)

	dsn, err := srv.CreateDB(ctx, o.db)
	if err != nil {
		b.Fatal(err)
	}
	erp, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = erp.Close(context.Background()) })
	if _, err := erp.Exec(ctx, `CREATE TABLE customers (
		customer_no  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		full_name    text NOT NULL,
		email        text,
		phone_number text,
		state        text CHECK (state IN ('L', 'C', 'X')))`); err != nil {
		b.Fatal(err)
	}

	budget := ""
	if o.rate > 0 {
		budget = fmt.Sprintf("rate: %d\n", o.rate)
	}
	if o.webhooks {
		budget += fmt.Sprintf("webhooks: {secret_file: %s}\n", secret)
	}
	apiCfg := write("crm-api.yaml", fmt.Sprintf(`preset: pocketbase
base_url: %s
auth: {login: {identity: %s, password_file: %s}}
%scollections:
  contacts:
    columns: {name: string, email: string, phone: string, status: string}
`, d.URL, apitest.PocketBaseEmail, write("pb.password", apitest.PocketBasePassword), budget))

	states := map[string]string{"L": "lead", "C": "customer", "X": "churned"}
	c, err := StartCluster(ctx, ClusterOptions{Nodes: 2, Logger: testLogger(b), Configure: func(i int, cfg *sidecar.Config) {
		cfg.Collections = map[string]sidecar.CollectionConfig{"contacts": {}}
		if i == 0 {
			cfg.Adapter = sidecar.AdapterConfig{Kind: sidecar.AdapterHTTP, DSN: apiCfg}
			cfg.Mapping = mapping.Config{Tables: map[string]mapping.TableConfig{"contacts": {Key: mapping.KeyConfig{IDMap: "crm"}}}}
			if apiAddr != "" {
				cfg.API.Addr = apiAddr
			}
			return
		}
		// Replication slots and origins are the server's, not a database's:
		// each pair names its own.
		name := "lattice_" + o.db
		cfg.Adapter = sidecar.AdapterConfig{Kind: sidecar.AdapterPostgres, DSN: dsn, Tables: []string{"customers"},
			Slot: name, Publication: name, Origin: name}
		cfg.Mapping = mapping.Config{Tables: map[string]mapping.TableConfig{"customers": {
			Collection: "contacts",
			Key:        mapping.KeyConfig{IDMap: "erp"},
			Columns: map[string]mapping.ColumnConfig{
				"customer_no":  {Field: "id"},
				"full_name":    {Field: "name"},
				"phone_number": {Field: "phone"},
				"state":        {Field: "status", Values: states},
			},
		}}}
	}})
	if err != nil {
		b.Fatalf("%+v", err)
	}
	b.Cleanup(c.Close)
	s := &pocketBaseERP{Cluster: c, pb: pb, erp: erp, door: d}
	if err := c.WaitFor(ctx, time.Minute, func() (bool, string) {
		var n int
		if err := erp.QueryRow(ctx, `SELECT count(*) FROM customers WHERE full_name = 'Sample'`).Scan(&n); err != nil {
			return false, err.Error()
		}
		if n != 1 {
			return false, "the ERP does not hold Sample yet"
		}
		return c.Converged()
	}); err != nil {
		b.Fatalf("%+v", err)
	}
	return s
}

// get sends a GET to PocketBase as its superuser, straight (not through
// the door), and decodes the JSON response into out.
func (s *pocketBaseERP) get(path string, out any) error {
	return s.send("GET", path, nil, out)
}

func (s *pocketBaseERP) send(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := nethttp.NewRequest(method, s.pb.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", s.pb.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return errors.Newf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// sampleID returns PocketBase's ID of the contact named Sample.
func (s *pocketBaseERP) sampleID(b *testing.B) string {
	b.Helper()
	var out struct{ Items []struct{ ID string } }
	if err := s.get("/api/collections/contacts/records?skipTotal=1&filter="+url.QueryEscape("name = 'Sample'"), &out); err != nil || len(out.Items) != 1 {
		b.Fatalf("the Sample record in PocketBase: %v, %+v", err, out)
	}
	return out.Items[0].ID
}

// propagation takes n samples each way between the ERP and PocketBase:
// a phone number changed with SQL until PocketBase serves it, and changed
// with a PATCH to PocketBase until the ERP holds it, each PATCH at a random
// point of the poll interval.
func (s *pocketBaseERP) propagation(b *testing.B, n int) (toAPI, fromAPI Latencies) {
	b.Helper()
	ctx := context.Background()
	id := s.sampleID(b)
	var err error
	toAPI, err = sample(ctx, s.Cluster, EndToEndOptions{Samples: n, From: 1, To: 0, Timeout: 30 * time.Second},
		func(_ int, v string) error {
			_, err := s.erp.Exec(ctx, `UPDATE customers SET phone_number = $1 WHERE full_name = 'Sample'`, v)
			return err
		},
		func(v string) (bool, error) {
			var r struct{ Phone string }
			if err := s.get("/api/collections/contacts/records/"+id, &r); err != nil || r.Phone == v {
				return err == nil, err
			}
			time.Sleep(2 * time.Millisecond) // a look every 2 ms leaves PocketBase's CPU to the sidecar's requests
			return false, nil
		})
	if err != nil {
		b.Fatalf("%+v", err)
	}
	fromAPI, err = sample(ctx, s.Cluster, EndToEndOptions{Samples: n, From: 0, To: 1, Timeout: 30 * time.Second, Spread: 2 * time.Second},
		func(_ int, v string) error {
			return s.send("PATCH", "/api/collections/contacts/records/"+id, map[string]any{"phone": v}, nil)
		},
		func(v string) (bool, error) {
			var got string
			err := s.erp.QueryRow(ctx, `SELECT COALESCE(phone_number, '') FROM customers WHERE full_name = 'Sample'`).Scan(&got)
			return got == v, err
		})
	if err != nil {
		b.Fatalf("%+v", err)
	}
	return toAPI, fromAPI
}

// summarise joins samples in milliseconds.
func summarise(raw []float64) Latencies {
	ds := make([]time.Duration, len(raw))
	for i, ms := range raw {
		ds[i] = time.Duration(ms * 1e6)
	}
	return Summarise(ds)
}

// BenchmarkHTTPPocketBasePropagation: a CRM in PocketBase (the http
// adapter's pocketbase preset, its default 2 s poll interval and 10
// requests/s budget) beside an ERP in PostgreSQL, through mappings and ID
// maps; a second pair, in the same run, has PocketBase announce its changes
// with the shipped pb_hooks webhook files. pg-pb: a phone number changed
// with SQL in the ERP until a GET of PocketBase serves it; pb-pg: changed
// with a PATCH to PocketBase until the ERP holds it. hook-*: the same with
// webhooks; ratio: hook-pb-pg-p50-ms over pb-pg-p50-ms. Each PATCH waits a
// random time up to the poll interval first, so that it falls anywhere in
// the interval. Each iteration takes 15 samples each way on each pair; the
// percentiles cover all of them. max-req/s: the most requests the polled
// pair's CRM sidecar sent within any one second.
func BenchmarkHTTPPocketBasePropagation(b *testing.B) {
	srv := pgtest.StartForBenchmark(b, pgtest.Options{})
	polled := startPocketBaseERP(b, srv, pocketBaseOptions{db: "erp_polled"})
	hooked := startPocketBaseERP(b, srv, pocketBaseOptions{db: "erp_hooked", webhooks: true})
	const n = 15
	var raw [2][2][]float64 // pair, direction
	for b.Loop() {
		for i, s := range []*pocketBaseERP{polled, hooked} {
			to, from := s.propagation(b, n)
			raw[i][0] = append(raw[i][0], to.Raw...)
			raw[i][1] = append(raw[i][1], from.Raw...)
		}
	}
	var p50 [2][2]float64
	for i, prefix := range []string{"", "hook-"} {
		for j, dir := range []string{"pg-pb", "pb-pg"} {
			l := summarise(raw[i][j])
			p50[i][j] = l.P50ms
			b.ReportMetric(l.P50ms, prefix+dir+"-p50-ms")
			b.ReportMetric(l.P99ms, prefix+dir+"-p99-ms")
		}
	}
	b.ReportMetric(p50[1][1]/p50[0][1], "ratio")
	b.ReportMetric(float64(polled.door.busiest()), "max-req/s")
}

// BenchmarkHTTPPocketBaseThroughput: records flowing from the ERP into
// PocketBase under a budget of 10 requests/s (burst 1). Each iteration
// inserts 60 customers in the ERP in one transaction, and once PocketBase
// holds them all changes all 60 in one UPDATE. creates/s and updates/s:
// records written into PocketBase per second, from the ERP's commit until
// a GET of PocketBase serves the last one, the median over iterations;
// req/record: the requests the CRM's sidecar sent meanwhile, counted at
// PocketBase's door, per record; max-req/s: the most requests within any
// one second of the run.
func BenchmarkHTTPPocketBaseThroughput(b *testing.B) {
	srv := pgtest.StartForBenchmark(b, pgtest.Options{})
	s := startPocketBaseERP(b, srv, pocketBaseOptions{db: "erp", rate: 10})
	ctx := context.Background()
	const n = 60
	var creates, updates, reqCreate, reqUpdate []float64
	run := 0
	// holds waits until PocketBase holds n records matching filter.
	holds := func(filter string) {
		q := "/api/collections/contacts/records?perPage=1&filter=" + url.QueryEscape(filter)
		deadline := time.Now().Add(5 * time.Minute)
		for {
			var out struct{ TotalItems int }
			if err := s.get(q, &out); err != nil {
				b.Fatal(err)
			}
			if out.TotalItems == n {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("PocketBase holds %d of %d records matching %s", out.TotalItems, n, filter)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for b.Loop() {
		run++
		prefix := fmt.Sprintf("Bulk %d ", run)
		before, start := s.door.count(), time.Now()
		if _, err := s.erp.Exec(ctx, `INSERT INTO customers (full_name, email, phone_number, state)
			SELECT $1 || i, 'bulk' || i || '@example.com', '+1 555 ' || i, 'L' FROM generate_series(1, $2) i`, prefix, n); err != nil {
			b.Fatal(err)
		}
		holds(fmt.Sprintf("name ~ '%s%%'", prefix))
		creates = append(creates, n/time.Since(start).Seconds())
		reqCreate = append(reqCreate, float64(s.door.count()-before)/n)
		if err := s.WaitFor(ctx, time.Minute, s.Converged); err != nil {
			b.Fatalf("%+v", err)
		}

		phone := fmt.Sprintf("+1 555 9%03d", run)
		before, start = s.door.count(), time.Now()
		if _, err := s.erp.Exec(ctx, `UPDATE customers SET phone_number = $1 WHERE full_name LIKE $2`, phone, prefix+"%"); err != nil {
			b.Fatal(err)
		}
		holds(fmt.Sprintf("name ~ '%s%%' && phone = '%s'", prefix, phone))
		updates = append(updates, n/time.Since(start).Seconds())
		reqUpdate = append(reqUpdate, float64(s.door.count()-before)/n)
		if err := s.WaitFor(ctx, time.Minute, s.Converged); err != nil {
			b.Fatalf("%+v", err)
		}
		b.Logf("%d creates at %.2f/s, %.2f requests each; %d updates at %.2f/s, %.2f requests each",
			n, creates[len(creates)-1], reqCreate[len(reqCreate)-1], n, updates[len(updates)-1], reqUpdate[len(reqUpdate)-1])
	}
	b.ReportMetric(median(creates), "creates/s")
	b.ReportMetric(median(updates), "updates/s")
	b.ReportMetric(median(reqCreate), "req/create")
	b.ReportMetric(median(reqUpdate), "req/update")
	b.ReportMetric(float64(s.door.busiest()), "max-req/s")
}

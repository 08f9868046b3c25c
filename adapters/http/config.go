package http

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"go.yaml.in/yaml/v3"
)

// Config describes one system reached over a JSON REST API. It is read from
// the YAML file the sidecar's adapter.dsn names (LoadConfig).
type Config struct {
	// Preset fills the conventions of a known API into every collection
	// (the fields a collection leaves empty): "json-server".
	Preset string `yaml:"preset"`
	// BaseURL is the API's root, e.g. http://127.0.0.1:3000.
	BaseURL string `yaml:"base_url"`
	// State is the SQLite file where the adapter keeps what the API cannot:
	// capture positions, the ID map, the records it knows of and its own
	// recent writes. Default: the config file's path with ".state.db"
	// appended.
	State string `yaml:"state"`
	// Auth authenticates every request.
	Auth AuthConfig `yaml:"auth"`
	// Timeout bounds one request (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// Rate is the request budget in requests per second (default 10), and
	// Burst how many may go at once after a quiet spell (default 1).
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// Concurrency is how many requests may be in flight at once (default
	// 4).
	Concurrency int `yaml:"concurrency"`
	// Circuit stops requests to an API that keeps failing (circuit.go).
	Circuit CircuitConfig `yaml:"circuit"`
	// TLS sets the certificates of an https API (tls.go).
	TLS TLSConfig `yaml:"tls"`
	// Retries is how many times a request that failed with 429, a 5xx or a
	// connection error is sent again before the system counts as
	// unavailable (default 3), waiting Backoff, doubled each time, with
	// jitter, or what Retry-After says (default 200ms, at most MaxBackoff,
	// default 10s).
	Retries    int           `yaml:"retries"`
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// PollInterval is how often capture asks for changes (default 2s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// Overlap is how far back before its high-water mark each poll asks
	// again, to cover the server's clock and writes that commit late
	// (default 5s).
	Overlap time.Duration `yaml:"overlap"`
	// Reconcile is how often capture lists every record to find the
	// records deleted on the server (default 1m).
	Reconcile time.Duration `yaml:"reconcile"`
	// ReadBeforeWrite reads each record before an update or a delete and
	// defers the write when the server holds a change that capture has not
	// taken yet (default true; it costs one request per write).
	ReadBeforeWrite *bool `yaml:"read_before_write"`
	// Collections are the synced collections by name.
	Collections map[string]*Collection `yaml:"collections"`

	path string // the file the config was read from
}

// AuthConfig authenticates requests: a bearer token read from a file, or
// HTTP basic authentication with the password read from a file. Secret
// files must be private to their owner.
type AuthConfig struct {
	BearerFile   string `yaml:"bearer_file"`
	User         string `yaml:"user"`
	PasswordFile string `yaml:"password_file"`
}

// Collection describes one collection of the API.
type Collection struct {
	// Path is the collection's path below BaseURL, e.g. /contacts.
	Path string `yaml:"path"`
	// ID is the field holding the record's ID (default "id"), IDKind its
	// kind: int or string (default int).
	ID     string `yaml:"id"`
	IDKind string `yaml:"id_kind"`
	// ClientIDs says the API takes the ID a create sends: the adapter then
	// mints string IDs itself, which closes the crash window of creates
	// (see the package doc).
	ClientIDs *bool `yaml:"client_ids"`
	// Updated is the field holding when the record last changed, in
	// UpdatedFormat: unix_ms (a number of milliseconds) or rfc3339.
	Updated       string `yaml:"updated"`
	UpdatedFormat string `yaml:"updated_format"`
	// StampUpdated makes the adapter set Updated itself on its writes, for
	// APIs that store what they are sent (json-server).
	StampUpdated *bool `yaml:"stamp_updated"`
	// Columns declares the synced fields and their kinds (int, float,
	// string, bool, time, json); the ID is added as the key.
	Columns map[string]string `yaml:"columns"`
	// Records is the dotted path of the array of records in a list
	// response ("" for a response that is the array itself).
	Records string `yaml:"records"`
	// SinceParam is the query parameter that keeps records updated at or
	// after a value (json-server: updated_gte).
	SinceParam string `yaml:"since_param"`
	// SortParam and OrderParam sort the list by Updated and ID ascending;
	// SortValue and OrderValue are their values (json-server:
	// _sort=updated,id&_order=asc,asc).
	SortParam  string `yaml:"sort_param"`
	SortValue  string `yaml:"sort_value"`
	OrderParam string `yaml:"order_param"`
	OrderValue string `yaml:"order_value"`
	// Paging is page (PageParam counts pages from 1), offset (OffsetParam
	// counts records from 0), cursor or next_link (paging.go); LimitParam
	// sets the page size, PageSize (default 100).
	Paging      string `yaml:"paging"`
	PageParam   string `yaml:"page_param"`
	OffsetParam string `yaml:"offset_param"`
	LimitParam  string `yaml:"limit_param"`
	PageSize    int    `yaml:"page_size"`
	// CursorParam is the query parameter that sends the cursor of the
	// next page, and CursorPath the dotted path of that cursor in a list
	// response (cursor paging).
	CursorParam string `yaml:"cursor_param"`
	CursorPath  string `yaml:"cursor_path"`
	// NextPath is the dotted path of the next page's URL in a list
	// response; without it, the Link header's rel="next" (next_link
	// paging).
	NextPath string `yaml:"next_path"`
	// Create, Update and Delete are the write requests: a method and a
	// path template in which {id} stands for the record's ID (defaults:
	// POST {path}, PUT {path}/{id}, DELETE {path}/{id}). Creates and
	// updates send the whole record.
	Create Request `yaml:"create"`
	Update Request `yaml:"update"`
	Delete Request `yaml:"delete"`
	// Deleted marks the records the API keeps as deleted (soft deletes,
	// softdelete.go).
	Deleted *SoftDelete `yaml:"deleted"`

	name         string
	sinceSuffix  string // a preset's filter suffix after Updated
	clientIDs    bool
	stampUpdated bool
	idKind       crdt.Kind
	columns      []colSpec // sorted by name, the ID first
}

// Request is a write request: method and path template.
type Request struct {
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
}

// colSpec is one declared field.
type colSpec struct {
	name string
	kind crdt.Kind
}

// presets are the conventions of known APIs.
var presets = map[string]Collection{
	// json-server 0.17: client IDs accepted, no timestamps of its own,
	// _gte filters, _sort/_order on several fields, _page/_limit.
	"json-server": {
		ID: "id", IDKind: "string", clientIDs: true,
		Updated: "updatedAt", UpdatedFormat: "unix_ms", stampUpdated: true,
		SortParam: "_sort", OrderParam: "_order", OrderValue: "asc,asc",
		Paging: "page", PageParam: "_page", LimitParam: "_limit",
		sinceSuffix: "_gte",
	},
}

// LoadConfig reads a YAML config file, fills its defaults and validates it.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.WithHint(errors.Wrap(err, "http adapter config"),
			"adapter.dsn names the adapter's YAML config file")
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, errors.Wrapf(err, "%s", path)
	}
	c.path = path
	if c.State == "" {
		c.State = filepath.Base(path) + ".state.db"
	}
	return c, nil
}

// ParseConfig parses a YAML config, fills its defaults and validates it.
// Unknown keys are errors.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil {
		return nil, errors.WithHint(errors.Wrap(err, "http adapter config"), "see docs/http.md for the keys")
	}
	if err := c.fill(); err != nil {
		return nil, err
	}
	return &c, nil
}

func keyErr(key, format string, args ...any) error {
	return errors.Newf("config %s: %s", key, fmt.Sprintf(format, args...))
}

func (c *Config) fill() error {
	if c.BaseURL == "" {
		return errors.WithHint(keyErr("base_url", "missing"), "the API's root, e.g. base_url: http://127.0.0.1:3000")
	}
	if !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://") {
		return errors.WithHint(keyErr("base_url", "%q is not an http or https URL", c.BaseURL), "e.g. https://crm.example.com/api")
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	var preset Collection
	if c.Preset != "" {
		p, ok := presets[c.Preset]
		if !ok {
			return errors.WithHint(keyErr("preset", "unknown preset %q", c.Preset), "known presets: json-server")
		}
		preset = p
	}
	if c.Auth.BearerFile != "" && (c.Auth.User != "" || c.Auth.PasswordFile != "") {
		return errors.WithHint(keyErr("auth", "bearer_file and basic (user, password_file) together"), "choose one")
	}
	if (c.Auth.User == "") != (c.Auth.PasswordFile == "") {
		return errors.WithHint(keyErr("auth", "basic authentication needs user and password_file"), "set both or neither")
	}
	for _, d := range []struct {
		key string
		v   *time.Duration
		def time.Duration
	}{{"timeout", &c.Timeout, 10 * time.Second}, {"backoff", &c.Backoff, 200 * time.Millisecond},
		{"max_backoff", &c.MaxBackoff, 10 * time.Second}, {"poll_interval", &c.PollInterval, 2 * time.Second},
		{"overlap", &c.Overlap, 5 * time.Second}, {"reconcile", &c.Reconcile, time.Minute}} {
		if *d.v < 0 {
			return keyErr(d.key, "negative duration %s", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Rate < 0 || c.Burst < 0 || c.Retries < 0 {
		return errors.WithHint(keyErr("rate", "rate, burst and retries must not be negative"), "e.g. rate: 10 (requests per second)")
	}
	if c.Rate == 0 {
		c.Rate = 10
	}
	if c.Burst == 0 {
		c.Burst = 1
	}
	if c.Retries == 0 {
		c.Retries = 3
	}
	if err := c.fillBudget(); err != nil {
		return err
	}
	if c.ReadBeforeWrite == nil {
		t := true
		c.ReadBeforeWrite = &t
	}
	if len(c.Collections) == 0 {
		return errors.WithHint(keyErr("collections", "none"), "declare each synced collection: its path and columns")
	}
	for name, col := range c.Collections {
		if col == nil {
			return keyErr("collections."+name, "empty")
		}
		if err := col.fill(name, preset); err != nil {
			return err
		}
	}
	return nil
}

func (col *Collection) fill(name string, p Collection) error {
	key := "collections." + name
	if err := crdt.ValidateName(name); err != nil {
		return errors.Wrapf(err, "config %s", key)
	}
	col.name = name
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&col.Path, "/"+name)
	def(&col.ID, p.ID)
	def(&col.ID, "id")
	def(&col.IDKind, p.IDKind)
	def(&col.IDKind, "int")
	def(&col.Updated, p.Updated)
	def(&col.UpdatedFormat, p.UpdatedFormat)
	def(&col.UpdatedFormat, "rfc3339")
	def(&col.SinceParam, p.SinceParam)
	if col.SinceParam == "" && p.sinceSuffix != "" {
		col.SinceParam = col.Updated + p.sinceSuffix
	}
	def(&col.SortParam, p.SortParam)
	def(&col.SortValue, p.SortValue)
	if col.SortValue == "" && col.SortParam != "" {
		col.SortValue = col.Updated + "," + col.ID
	}
	def(&col.OrderParam, p.OrderParam)
	def(&col.OrderValue, p.OrderValue)
	def(&col.Paging, p.Paging)
	def(&col.PageParam, p.PageParam)
	def(&col.OffsetParam, p.OffsetParam)
	def(&col.LimitParam, p.LimitParam)
	col.clientIDs, col.stampUpdated = p.clientIDs, p.stampUpdated
	if col.ClientIDs != nil {
		col.clientIDs = *col.ClientIDs
	}
	if col.StampUpdated != nil {
		col.stampUpdated = *col.StampUpdated
	}
	if col.PageSize == 0 {
		col.PageSize = 100
	}
	def(&col.Create.Method, "POST")
	def(&col.Create.Path, col.Path)
	def(&col.Update.Method, "PUT")
	def(&col.Update.Path, col.Path+"/{id}")
	def(&col.Delete.Method, "DELETE")
	def(&col.Delete.Path, col.Path+"/{id}")

	if !strings.HasPrefix(col.Path, "/") {
		return errors.WithHint(keyErr(key+".path", "%q does not start with /", col.Path), "a path below base_url, e.g. /contacts")
	}
	switch col.IDKind {
	case "int":
		col.idKind = crdt.KindInt
	case "string":
		col.idKind = crdt.KindString
	default:
		return errors.WithHint(keyErr(key+".id_kind", "%q", col.IDKind), "int or string")
	}
	if col.clientIDs && col.idKind != crdt.KindString {
		return errors.WithHint(keyErr(key+".client_ids", "the adapter mints string IDs, and id_kind is %s", col.IDKind),
			"set id_kind: string, or let the server mint IDs (client_ids: false)")
	}
	if col.Updated == "" {
		return errors.WithHint(keyErr(key+".updated", "missing"), "the field that holds when a record last changed, e.g. updated: updatedAt")
	}
	if col.UpdatedFormat != "unix_ms" && col.UpdatedFormat != "rfc3339" {
		return errors.WithHint(keyErr(key+".updated_format", "%q", col.UpdatedFormat), "unix_ms or rfc3339")
	}
	if col.SinceParam == "" {
		return errors.WithHint(keyErr(key+".since_param", "missing"), "the query parameter that keeps records updated at or after a value, e.g. updatedAt_gte")
	}
	if err := col.checkPaging(key); err != nil {
		return err
	}
	if err := col.checkSoftDelete(key); err != nil {
		return err
	}
	if col.PageSize < 1 {
		return keyErr(key+".page_size", "%d is not positive", col.PageSize)
	}
	for _, r := range []struct {
		k string
		r Request
	}{{"update", col.Update}, {"delete", col.Delete}} {
		if !strings.Contains(r.r.Path, "{id}") {
			return errors.WithHint(keyErr(key+"."+r.k+".path", "%q has no {id}", r.r.Path), "e.g. path: /contacts/{id}")
		}
	}
	if len(col.Columns) == 0 {
		return errors.WithHint(keyErr(key+".columns", "none"), "declare the synced fields, e.g. columns: {name: string, age: int}")
	}
	col.columns = []colSpec{{name: col.ID, kind: col.idKind}}
	for _, n := range slices.Sorted(maps.Keys(col.Columns)) {
		if n == col.ID || n == col.Updated {
			return errors.WithHint(keyErr(key+".columns."+n, "is the ID or the updated field"), "those are not declared as columns")
		}
		k, err := crdt.ParseKind(col.Columns[n])
		if err != nil || k == crdt.KindNull || k == crdt.KindList || k == crdt.KindBytes {
			return errors.WithHint(keyErr(key+".columns."+n, "kind %q", col.Columns[n]), "int, float, string, bool, time or json")
		}
		col.columns = append(col.columns, colSpec{name: n, kind: k})
	}
	return nil
}

// statePath resolves the state file relative to the config file.
func (cfg *Config) statePath() string {
	if filepath.IsAbs(cfg.State) || cfg.path == "" {
		return cfg.State
	}
	return filepath.Join(filepath.Dir(cfg.path), cfg.State)
}

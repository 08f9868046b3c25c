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
	// and into auth.login (the fields they leave empty): "json-server" or
	// "pocketbase".
	Preset string `yaml:"preset"`
	// Connector names the Go code (RegisterConnector) that prepares the
	// requests and translates the records and bodies of an API the keys
	// below cannot describe.
	Connector string `yaml:"connector"`
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
	// Webhooks enables the webhook receiver (webhook.go); nil: none.
	Webhooks *WebhookConfig `yaml:"webhooks"`
	// RangeReads lets the engine's verification read the API's records
	// (the adapter then implements adapters.RangeReader, ranges.go): each
	// pass lists every record once, and reads each record that seems to
	// differ again (default false).
	RangeReads bool `yaml:"range_reads"`
	// Collections are the synced collections by name.
	Collections map[string]*Collection `yaml:"collections"`

	path string    // the file the config was read from
	conn Connector // the connector named, or nil
}

// AuthConfig authenticates requests, in one of four ways: a bearer token
// read from a file (BearerFile), a header whose value is read from a file
// (HeaderFile), HTTP basic authentication with the password read from a
// file (User, PasswordFile), or a login request whose token is renewed
// (Login). Secret files must be private to their owner.
type AuthConfig struct {
	// BearerFile holds a token sent as "Bearer <token>" in Header.
	BearerFile string `yaml:"bearer_file"`
	// HeaderFile holds the whole value of Header, e.g. an API key.
	HeaderFile string `yaml:"header_file"`
	// Header is the header that carries the credential of BearerFile,
	// HeaderFile or Login (default Authorization).
	Header string `yaml:"header"`
	// User and PasswordFile are HTTP basic authentication.
	User         string `yaml:"user"`
	PasswordFile string `yaml:"password_file"`
	// Login logs in with a request and sends the token it returns.
	Login *LoginConfig `yaml:"login"`
}

// LoginConfig is a login request: a POST of a JSON object holding the
// identity and the password to Path, whose JSON response holds a token.
// The adapter logs in before its first request, again shortly before the
// token expires (when the token is a JWT with an exp claim, which is read
// without being verified) and once after a response of 401 or 403 (the
// token was revoked); a 401 or 403 with a fresh token makes the system
// unavailable. The password file is read at every login, so that it can be
// changed without a restart.
type LoginConfig struct {
	// Path is the login request's path below base_url (pocketbase preset:
	// /api/collections/_superusers/auth-with-password).
	Path string `yaml:"path"`
	// Identity is the user's name or email; PasswordFile holds the
	// password.
	Identity     string `yaml:"identity"`
	PasswordFile string `yaml:"password_file"`
	// IdentityField and PasswordField name the request's fields (default
	// username and password; pocketbase preset: identity and password).
	IdentityField string `yaml:"identity_field"`
	PasswordField string `yaml:"password_field"`
	// TokenField is the dotted path of the token in the response (default
	// token).
	TokenField string `yaml:"token_field"`
	// Format is the header's value, in which {token} stands for the token
	// (default "Bearer {token}"; pocketbase preset: "{token}").
	Format string `yaml:"format"`
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
	// (see the package doc). A minted ID is IDLength characters drawn at
	// random from IDAlphabet (default 20 of 0123456789abcdef; pocketbase
	// preset: 15 of a-z and 0-9, PocketBase's default ID pattern).
	ClientIDs  *bool  `yaml:"client_ids"`
	IDLength   int    `yaml:"id_length"`
	IDAlphabet string `yaml:"id_alphabet"`
	// Updated is the field holding when the record last changed, in
	// UpdatedFormat: unix_ms (a number of milliseconds), rfc3339, or
	// layout:<a Go time layout>, read and written in UTC (pocketbase
	// preset: layout:2006-01-02 15:04:05.000Z).
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
	// after a value (json-server: updatedAt_gte), and SinceValue its value,
	// in which {since} stands for the value in UpdatedFormat and {updated}
	// for the Updated field's name (default {since}; pocketbase preset:
	// filter={updated} >= '{since}').
	SinceParam string `yaml:"since_param"`
	SinceValue string `yaml:"since_value"`
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
	// Query holds query parameters sent with every list request
	// (pocketbase preset: skipTotal=1, which spares the server counting).
	Query map[string]string `yaml:"query"`
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
	pathTmpl     string // a preset's path, in which {name} stands for the collection's name
	layout       string // the Go time layout of UpdatedFormat; "" for unix_ms
	clientIDs    bool
	stampUpdated bool
	conn         Connector // nil: none
	connName     string
	idKind       crdt.Kind
	columns      []colSpec // sorted by name, the ID first
}

// Request is a write request: method, path template and, for updates,
// what the body holds.
type Request struct {
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
	// Body is what an update sends: record (every declared field) or
	// changed (the fields that differ from the record as the adapter last
	// captured or wrote it, for an API whose PATCH keeps the rest; the
	// whole record when it knows no earlier row).
	Body string `yaml:"body"`
}

// colSpec is one declared field.
type colSpec struct {
	name string
	kind crdt.Kind
}

// preset is the conventions of a known API.
type preset struct {
	col   Collection
	login LoginConfig
}

// presets are the conventions of known APIs.
var presets = map[string]preset{
	// json-server 0.17: client IDs accepted, no timestamps of its own,
	// _gte filters, _sort/_order on several fields, _page/_limit.
	"json-server": {col: Collection{
		ID: "id", IDKind: "string", clientIDs: true,
		Updated: "updatedAt", UpdatedFormat: "unix_ms", stampUpdated: true,
		SortParam: "_sort", OrderParam: "_order", OrderValue: "asc,asc",
		Paging: "page", PageParam: "_page", LimitParam: "_limit",
		sinceSuffix: "_gte",
	}},
	// PocketBase 0.40: records below /api/collections/<name>/records in
	// "items", client IDs of 15 [a-z0-9] accepted, server-set "updated"
	// (an autodate field) in milliseconds, one filter parameter, sort on
	// several fields, page/perPage, PATCH updates, superuser login.
	"pocketbase": {
		col: Collection{
			pathTmpl: "/api/collections/{name}/records", Records: "items",
			ID: "id", IDKind: "string", clientIDs: true, IDLength: 15, IDAlphabet: "abcdefghijklmnopqrstuvwxyz0123456789",
			Updated: "updated", UpdatedFormat: "layout:2006-01-02 15:04:05.000Z",
			SinceParam: "filter", SinceValue: "{updated} >= '{since}'", SortParam: "sort",
			Paging: "page", PageParam: "page", LimitParam: "perPage",
			Query:  map[string]string{"skipTotal": "1"},
			Update: Request{Method: "PATCH"},
		},
		login: LoginConfig{
			Path:          "/api/collections/_superusers/auth-with-password",
			IdentityField: "identity", PasswordField: "password", TokenField: "token", Format: "{token}",
		},
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
	var p preset
	if c.Preset != "" {
		var ok bool
		if p, ok = presets[c.Preset]; !ok {
			return errors.WithHint(keyErr("preset", "unknown preset %q", c.Preset), "known presets: json-server, pocketbase")
		}
	}
	if err := c.Auth.fill(p.login); err != nil {
		return err
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
	if err := c.Webhooks.fill(); err != nil {
		return err
	}
	if len(c.Collections) == 0 {
		return errors.WithHint(keyErr("collections", "none"), "declare each synced collection: its path and columns")
	}
	var conn Connector
	if c.Connector != "" {
		var err error
		if conn, err = connectorNamed(c.Connector); err != nil {
			return err
		}
	}
	for name, col := range c.Collections {
		if col == nil {
			return keyErr("collections."+name, "empty")
		}
		if err := col.fill(name, p.col); err != nil {
			return err
		}
		col.conn, col.connName = conn, c.Connector
	}
	c.conn = conn
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
	def(&col.Path, strings.ReplaceAll(p.pathTmpl, "{name}", name))
	def(&col.Path, "/"+name)
	def(&col.Records, p.Records)
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
	def(&col.SinceValue, p.SinceValue)
	def(&col.SinceValue, "{since}")
	col.SinceValue = strings.ReplaceAll(col.SinceValue, "{updated}", col.Updated)
	def(&col.IDAlphabet, p.IDAlphabet)
	def(&col.IDAlphabet, "0123456789abcdef")
	if col.IDLength == 0 {
		col.IDLength = p.IDLength
	}
	if col.IDLength == 0 {
		col.IDLength = 20
	}
	if col.Query == nil {
		col.Query = p.Query
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
	def(&col.Update.Method, p.Update.Method)
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
	if err := col.fillLayout(key); err != nil {
		return err
	}
	if col.SinceParam == "" {
		return errors.WithHint(keyErr(key+".since_param", "missing"), "the query parameter that keeps records updated at or after a value, e.g. updatedAt_gte")
	}
	if !strings.Contains(col.SinceValue, "{since}") {
		return errors.WithHint(keyErr(key+".since_value", "%q has no {since}", col.SinceValue), "e.g. since_value: \"{updated} >= '{since}'\"")
	}
	if col.IDLength < 8 || col.IDLength > 128 {
		return errors.WithHint(keyErr(key+".id_length", "%d", col.IDLength), "between 8 and 128 characters; short IDs collide")
	}
	if n := len(col.IDAlphabet); n < 2 || n > 256 {
		return errors.WithHint(keyErr(key+".id_alphabet", "%q", col.IDAlphabet), "2 to 256 distinct ASCII characters, e.g. abcdefghijklmnopqrstuvwxyz0123456789")
	}
	for i, r := range col.IDAlphabet {
		if r >= 0x80 || strings.ContainsRune(col.IDAlphabet[:i], r) {
			return errors.WithHint(keyErr(key+".id_alphabet", "%q", col.IDAlphabet), "2 to 256 distinct ASCII characters, e.g. abcdefghijklmnopqrstuvwxyz0123456789")
		}
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
	switch col.Update.Body {
	case "":
		col.Update.Body = "record"
	case "record":
	case "changed":
		if strings.EqualFold(col.Update.Method, "PUT") {
			return errors.WithHint(keyErr(key+".update.body", "changed fields with method PUT, which replaces the record"),
				"an API that takes changed fields takes them with PATCH: method: PATCH")
		}
	default:
		return errors.WithHint(keyErr(key+".update.body", "%q", col.Update.Body), "record or changed")
	}
	for _, r := range []struct {
		k string
		r Request
	}{{"create", col.Create}, {"delete", col.Delete}} {
		if r.r.Body != "" {
			return errors.WithHint(keyErr(key+"."+r.k+".body", "only updates choose their body"), "a create sends the whole record, a delete none")
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

// fillLayout checks UpdatedFormat and sets its time layout. A layout must
// read back what it writes, to the second at least.
func (col *Collection) fillLayout(key string) error {
	switch f := col.UpdatedFormat; {
	case f == "unix_ms":
		return nil
	case f == "rfc3339":
		col.layout = "2006-01-02T15:04:05.000Z07:00"
		return nil
	case strings.HasPrefix(f, "layout:"):
		col.layout = strings.TrimPrefix(f, "layout:")
		t := time.Date(2025, 11, 28, 17, 4, 5, 123e6, time.UTC)
		back, err := time.Parse(col.layout, t.Format(col.layout))
		if err == nil && back.Unix() == t.Unix() {
			return nil
		}
	}
	return errors.WithHint(keyErr(key+".updated_format", "%q", col.UpdatedFormat),
		"unix_ms, rfc3339 or layout:<a Go time layout with date and time>, e.g. layout:2006-01-02 15:04:05.000Z")
}

// fill checks the auth keys and fills a login's defaults from the
// preset's.
func (a *AuthConfig) fill(p LoginConfig) error {
	n := 0
	for _, set := range []bool{a.BearerFile != "", a.HeaderFile != "", a.User != "" || a.PasswordFile != "", a.Login != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.WithHint(keyErr("auth", "more than one of bearer_file, header_file, basic (user, password_file) and login"), "choose one")
	}
	if (a.User == "") != (a.PasswordFile == "") {
		return errors.WithHint(keyErr("auth", "basic authentication needs user and password_file"), "set both or neither")
	}
	if a.Header == "" {
		a.Header = "Authorization"
	}
	if strings.ContainsAny(a.Header, " :\t\r\n") {
		return errors.WithHint(keyErr("auth.header", "%q is not a header name", a.Header), "e.g. header: X-API-Key")
	}
	if a.Header != "Authorization" && a.User != "" {
		return errors.WithHint(keyErr("auth.header", "basic authentication goes in Authorization"), "remove auth.header")
	}
	l := a.Login
	if l == nil {
		return nil
	}
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&l.Path, p.Path)
	def(&l.IdentityField, p.IdentityField)
	def(&l.IdentityField, "username")
	def(&l.PasswordField, p.PasswordField)
	def(&l.PasswordField, "password")
	def(&l.TokenField, p.TokenField)
	def(&l.TokenField, "token")
	def(&l.Format, p.Format)
	def(&l.Format, "Bearer {token}")
	switch {
	case l.Path == "":
		return errors.WithHint(keyErr("auth.login.path", "missing"), "the login request's path below base_url, e.g. path: /auth/login")
	case !strings.HasPrefix(l.Path, "/"):
		return errors.WithHint(keyErr("auth.login.path", "%q does not start with /", l.Path), "a path below base_url, e.g. /auth/login")
	case l.Identity == "":
		return errors.WithHint(keyErr("auth.login.identity", "missing"), "the user's name or email")
	case l.PasswordFile == "":
		return errors.WithHint(keyErr("auth.login.password_file", "missing"), "a file, private to its owner, holding the password")
	case !strings.Contains(l.Format, "{token}"):
		return errors.WithHint(keyErr("auth.login.format", "%q has no {token}", l.Format), "e.g. format: \"Bearer {token}\"")
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

package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Limits on what a browser may send.
const (
	// maxFormBytes bounds a form body (login, actions).
	maxFormBytes = 16 << 10
	// maxValueBytes bounds one query or form value.
	maxValueBytes = 4096
	// maxSessions bounds the sessions kept in memory; the oldest goes first.
	maxSessions = 256
	// sessionTTL is how long a login lasts.
	sessionTTL = 12 * time.Hour
)

// Config is what an agent hands its console.
type Config struct {
	// API is the agent's JSON API handler (the routes under /v1); the
	// console calls it in process.
	API http.Handler
	// Token is the API token: the console asks for it at login and sends
	// it to the API. Empty means the API is open, and so is the console.
	Token string
	// Metrics is read for the propagation-delay histogram and the
	// verification figures.
	Metrics prometheus.Gatherer
	// Logger receives the console's logins and actions.
	Logger *slog.Logger
	// Refresh is how often pages reload themselves (default 5s; negative:
	// never).
	Refresh time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Console serves the web console under /ui/.
type Console struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	csrf    string
	created time.Time
}

// New returns a console.
func New(cfg Config) (*Console, error) {
	if cfg.Refresh == 0 {
		cfg.Refresh = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, log: cfg.Logger.With("component", "console"), sessions: map[string]*session{}}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /ui/login", c.loginPage)
	m.HandleFunc("POST /ui/login", c.login)
	m.HandleFunc("POST /ui/logout", c.authed(c.logout))
	m.HandleFunc("GET /ui/{$}", c.authed(c.clusterPage))
	m.HandleFunc("GET /ui/node", c.authed(c.nodePage))
	m.HandleFunc("GET /ui/parked", c.authed(c.parkedPage))
	m.HandleFunc("GET /ui/parked/skip", c.authed(c.skipPage))
	m.HandleFunc("POST /ui/parked/retry", c.authed(c.retryAction))
	m.HandleFunc("POST /ui/parked/skip", c.authed(c.skipAction))
	m.HandleFunc("GET /ui/drift", c.authed(c.driftPage))
	m.HandleFunc("POST /ui/drift/verify", c.authed(c.verifyAction))
	m.HandleFunc("GET /ui/conflicts", c.authed(c.conflictsPage))
	m.HandleFunc("POST /ui/conflicts/resolve", c.authed(c.resolveAction))
	m.HandleFunc("GET /ui/collections", c.authed(c.collectionsPage))
	m.HandleFunc("GET /ui/collections/{name}", c.authed(c.recordsPage))
	m.HandleFunc("GET /ui/records/{collection}/{key}", c.authed(c.recordPage))
	c.mux = m
	return c, nil
}

// ServeHTTP serves /ui and everything under it.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if r.URL.Path == "/ui" {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	if len(r.URL.RawQuery) > 4*maxValueBytes || len(r.URL.Path) > 4*maxValueBytes {
		c.fail(w, r, http.StatusRequestURITooLong, "the address is too long", "")
		return
	}
	c.mux.ServeHTTP(w, r)
}

// cookieName is per port: browsers send a host's cookies to every port,
// and each agent on a host keeps its own sessions.
func cookieName(r *http.Request) string {
	_, port, err := net.SplitHostPort(r.Host)
	if err != nil || port == "" {
		port = "default"
	}
	var b strings.Builder
	for _, ch := range port {
		if ch >= '0' && ch <= '9' {
			b.WriteRune(ch)
		}
	}
	return "lattice_console_" + b.String()
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenOK compares a login token with the API token in constant time (the
// hashes have equal lengths whatever was typed).
func (c *Console) tokenOK(got string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(c.cfg.Token))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// newSession creates a session and sets its cookie.
func (c *Console) newSession(w http.ResponseWriter, r *http.Request) *session {
	id := randomID()
	s := &session{csrf: randomID(), created: c.cfg.Now()}
	c.mu.Lock()
	c.expire()
	for len(c.sessions) >= maxSessions {
		var oldest string
		for k, v := range c.sessions {
			if oldest == "" || v.created.Before(c.sessions[oldest].created) {
				oldest = k
			}
		}
		delete(c.sessions, oldest)
	}
	c.sessions[id] = s
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: id, Path: "/ui", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL / time.Second)})
	return s
}

// expire forgets sessions past their lifetime; c.mu is held.
func (c *Console) expire() {
	now := c.cfg.Now()
	for k, s := range c.sessions {
		if now.Sub(s.created) > sessionTTL {
			delete(c.sessions, k)
		}
	}
}

// sessionOf returns the request's live session, or nil.
func (c *Console) sessionOf(r *http.Request) (string, *session) {
	ck, err := r.Cookie(cookieName(r))
	if err != nil || len(ck.Value) > 100 {
		return "", nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ck.Value]
	if s == nil || c.cfg.Now().Sub(s.created) > sessionTTL {
		delete(c.sessions, ck.Value)
		return "", nil
	}
	return ck.Value, s
}

type ctxHandler func(w http.ResponseWriter, r *http.Request, s *session)

// authed requires a session (with no token configured, one is made on the
// first visit) and, for POST, a form with the session's CSRF token from the
// console's own origin.
func (c *Console) authed(next ctxHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, s := c.sessionOf(r)
		if s == nil {
			if c.cfg.Token != "" {
				if r.Method == http.MethodGet {
					http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				c.fail(w, r, http.StatusUnauthorized, "your session has ended", "log in again")
				return
			}
			if r.Method != http.MethodGet {
				c.fail(w, r, http.StatusForbidden, "no session for this action", "open the page again and repeat the action")
				return
			}
			s = c.newSession(w, r)
		}
		if r.Method == http.MethodPost {
			if !c.formOK(w, r) {
				return
			}
			got := r.PostForm.Get("csrf")
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				c.fail(w, r, http.StatusForbidden, "the form is stale or did not come from this console", "reload the page and try again")
				return
			}
		}
		next(w, r, s)
	}
}

// formOK parses a bounded form body from this console's own origin.
func (c *Console) formOK(w http.ResponseWriter, r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			c.fail(w, r, http.StatusForbidden, "cross-site form refused", "use the console's own pages")
			return false
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "the form could not be read", "")
		return false
	}
	for _, vs := range r.PostForm {
		for _, v := range vs {
			if len(v) > maxValueBytes {
				c.fail(w, r, http.StatusBadRequest, "a form value is too long", "")
				return false
			}
		}
	}
	return true
}

// safeNext returns a local console path to go to after login, or /ui/.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") || len(next) > maxValueBytes {
		return "/ui/"
	}
	return next
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Token == "" {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", nil, page{Title: "Log in", Next: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !c.formOK(w, r) {
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if c.cfg.Token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if !c.tokenOK(strings.TrimSpace(r.PostForm.Get("token"))) {
		c.log.Warn("console login refused: wrong token", "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "login", nil, page{Title: "Log in", Next: next,
			Error: "That is not this agent's API token (api.token_file)."})
		return
	}
	c.newSession(w, r)
	c.log.Info("console login", "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	if id, _ := c.sessionOf(r); id != "" {
		c.mu.Lock()
		delete(c.sessions, id)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: "", Path: "/ui", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: -1})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

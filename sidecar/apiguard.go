package sidecar

import (
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/cockroachdb/errors"
)

// guard turns away requests that a web browser could have been tricked into
// sending, before any route sees them:
//
//   - DNS rebinding: a page on attacker.example whose name then resolves to
//     127.0.0.1 reaches the API as same-origin, but its Host header still
//     names attacker.example. Host must be a loopback name or address, the
//     address the request arrived on, or one of api.allowed_hosts (else 421).
//   - Cross-site requests: with no token configured, a request whose Origin
//     is not such a host is refused (403). With a token a browser cannot
//     send the Authorization header cross-site without a CORS preflight,
//     which this API never grants.
//   - HTML forms: they can POST only form and text bodies, so PUT, PATCH and
//     POST must say Content-Type: application/json (else 415). The web
//     console under /ui takes forms, each with its session's CSRF token.
type guard struct {
	hosts   map[string]bool // lower-case names and addresses from api.allowed_hosts
	anyHost bool            // api.allowed_hosts holds "*"
	open    bool            // no token is configured
}

func newGuard(cfg APIConfig, token string) *guard {
	g := &guard{hosts: map[string]bool{}, open: token == ""}
	for _, h := range cfg.AllowedHosts {
		if h == "*" {
			g.anyHost = true
			continue
		}
		g.hosts[normalHost(h)] = true
	}
	return g
}

// normalHost lower-cases a host name and drops a trailing dot and the
// brackets of an IPv6 address.
func normalHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}

// allowed reports whether hostport (a Host header or an Origin's host)
// names this API. local is the address the request arrived on, if known.
func (g *guard) allowed(hostport string, local net.Addr) bool {
	if g.anyHost {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = normalHost(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || g.hosts[host] {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return true
	}
	// An address literal cannot come from a rebound name: it is what the
	// client dialled. Accept the one the request arrived on.
	if ta, ok := local.(*net.TCPAddr); ok {
		if la, ok := netip.AddrFromSlice(ta.IP); ok && la.Unmap() == ip {
			return true
		}
	}
	return false
}

func (g *guard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if r.Host != "" && !g.allowed(r.Host, local) {
			writeError(w, http.StatusMisdirectedRequest, errors.Newf("host %q is not a name of this API", r.Host),
				"use a loopback address, or list the name under api.allowed_hosts")
			return
		}
		if origin := r.Header.Get("Origin"); g.open && origin != "" && !g.sameSite(origin, local) {
			writeError(w, http.StatusForbidden, errors.Newf("cross-site request from origin %q refused", origin),
				"the API has no token, so only clients on this host or named in api.allowed_hosts may call it; set api.token_file to allow others")
			return
		}
		if r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/") {
			// The web console takes HTML forms; it checks their origin and
			// a per-session CSRF token itself (see sidecar/console).
			next.ServeHTTP(w, r)
			return
		}
		switch r.Method {
		case http.MethodPut, http.MethodPatch, http.MethodPost:
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType,
					errors.Newf("%s needs Content-Type: application/json, got %q", r.Method, r.Header.Get("Content-Type")),
					"send the body as JSON with Content-Type: application/json")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// sameSite reports whether an Origin header names a host this API accepts.
// "null" (sandboxed frames, files, redirects) never does.
func (g *guard) sameSite(origin string, local net.Addr) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return g.allowed(u.Host, local)
}

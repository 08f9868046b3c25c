package http

import (
	"context"
	"encoding/base64"
	"encoding/json"
	nethttp "net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/clock"
)

// credentials authenticate requests. Their methods are safe for
// concurrent use.
type credentials interface {
	// header returns the header a request carries (name "" for none) and
	// the login that issued it (0 for fixed credentials), logging in first
	// when there is no token or it is about to expire.
	header(ctx context.Context) (name, value string, gen int64, err error)
	// rejected is told that the API refused the credentials of login gen
	// (401 or 403) and reports whether logging in again may help.
	rejected(gen int64) bool
}

// fixed credentials never change: a token, a header or basic
// authentication read from files when the adapter opens.
type fixed struct{ name, value string }

func (f fixed) header(context.Context) (string, string, int64, error) { return f.name, f.value, 0, nil }
func (fixed) rejected(int64) bool                                     { return false }

// authenticator returns the credentials that auth describes. A login's
// client is set by Open.
func authenticator(c AuthConfig, clk clock.Clock) (credentials, error) {
	hdr := c.Header
	if hdr == "" {
		hdr = "Authorization"
	}
	switch {
	case c.BearerFile != "":
		tok, err := readSecret(c.BearerFile, "auth.bearer_file")
		if err != nil {
			return nil, err
		}
		return fixed{hdr, "Bearer " + tok}, nil
	case c.HeaderFile != "":
		v, err := readSecret(c.HeaderFile, "auth.header_file")
		if err != nil {
			return nil, err
		}
		return fixed{hdr, v}, nil
	case c.User != "":
		pw, err := readSecret(c.PasswordFile, "auth.password_file")
		if err != nil {
			return nil, err
		}
		return fixed{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(c.User+":"+pw))}, nil
	case c.Login != nil:
		// Fail at open rather than at the first login.
		if _, err := readSecret(c.Login.PasswordFile, "auth.login.password_file"); err != nil {
			return nil, err
		}
		return &login{cfg: *c.Login, name: hdr, clk: clk}, nil
	}
	return fixed{}, nil
}

// readSecret reads a secret file, which must be private to its owner; key
// is the whole config key that names it (auth.bearer_file), for errors.
func readSecret(path, key string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", errors.Wrapf(err, "config %s", key)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", errors.WithHint(errors.Newf("config %s: %s is readable by others (mode %v)", key, path, fi.Mode().Perm()),
			"chmod 600 "+path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", errors.Wrapf(err, "config %s", key)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.Newf("config %s: %s is empty", key, path)
	}
	return s, nil
}

// login holds the token of a login request, logging in again shortly
// before it expires and after the API refuses it.
type login struct {
	cfg  LoginConfig
	name string // the header
	c    *client
	clk  clock.Clock

	mu      sync.Mutex // held while logging in: the other requests wait for the token
	value   string     // the header's value; "" before the first login and after a refusal
	renewAt time.Time  // zero when the token's expiry is unknown
	gen     int64      // counts logins

	logins atomic.Int64
}

// renewMargin is how long before its expiry a token is renewed, at most:
// a quarter of the token's lifetime when that is shorter.
const renewMargin = time.Minute

func (l *login) header(ctx context.Context) (string, string, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.value == "" || !l.renewAt.IsZero() && !l.clk.Now().Before(l.renewAt) {
		if err := l.login(ctx); err != nil {
			return "", "", 0, err
		}
	}
	return l.name, l.value, l.gen, nil
}

func (l *login) rejected(gen int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen == l.gen {
		l.value = "" // another request may have logged in again already
	}
	return true
}

// login sends the login request and keeps the token it returns.
func (l *login) login(ctx context.Context) error {
	pw, err := readSecret(l.cfg.PasswordFile, "auth.login.password_file")
	if err != nil {
		return errors.Mark(err, adapters.ErrUnavailable)
	}
	body, err := json.Marshal(map[string]string{l.cfg.IdentityField: l.cfg.Identity, l.cfg.PasswordField: pw})
	if err != nil {
		return errors.Wrap(err, "http adapter: login")
	}
	start := l.clk.Now()
	r, err := l.c.send(ctx, nethttp.MethodPost, l.c.cfg.BaseURL+l.cfg.Path, body, false)
	var se *statusError
	if errors.As(err, &se) && !errors.Is(err, adapters.ErrUnavailable) {
		return errors.Mark(errors.WithHint(errors.Wrap(err, "http adapter: login"),
			"check auth.login.identity and the password in auth.login.password_file; the writes wait and are retried"),
			adapters.ErrUnavailable)
	}
	if err != nil {
		return err
	}
	tok, err := stringAt(r.body, l.cfg.TokenField)
	if err != nil {
		return errors.Mark(errors.WithHint(errors.Wrap(err, "http adapter: login response"),
			"auth.login.token_field is the dotted path of the token in the login response"), adapters.ErrUnavailable)
	}
	l.value = strings.ReplaceAll(l.cfg.Format, "{token}", tok)
	l.renewAt = time.Time{}
	if exp, ok := jwtExpiry(tok); ok {
		if life := exp.Sub(start); life > 0 {
			l.renewAt = exp.Add(-min(renewMargin, life/4))
		}
	}
	l.gen++
	l.logins.Add(1)
	return nil
}

// stringAt returns the string at a dotted path of a JSON object.
func stringAt(body []byte, path string) (string, error) {
	raw := json.RawMessage(body)
	for _, part := range strings.Split(path, ".") {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return "", errors.Newf("want an object holding %q: %s", path, clip(body))
		}
		raw = obj[part]
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return "", errors.Newf("want a string at %q: %s", path, clip(body))
	}
	return s, nil
}

// jwtExpiry reads the exp claim of a JSON Web Token, without verifying the
// token (the adapter only needs to know when to renew it).
func jwtExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Exp == nil || *claims.Exp <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(*claims.Exp), 0), true
}

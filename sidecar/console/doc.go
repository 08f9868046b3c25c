// Package console is the web console every agent serves at /ui on its API
// address: server-rendered pages of the cluster, this node's loops, parked
// records (with retry and skip), drift, the conflict log, collections and
// policies, and each record's fields with who wrote them.
//
// The console is a client of the agent's JSON API, called in process: it
// shows nothing the API does not, every action goes through the same
// handler, limits and checks as a script's would, and a page lights up as
// soon as the endpoint or metric it reads exists (the conflict log,
// verification). It imports neither the store nor gossip.
//
// Security:
//   - Logging in takes the API token once, compared in constant time. The
//     browser then holds a random session ID in an HttpOnly, SameSite=Strict
//     cookie (Secure over TLS), never the token: scripts cannot read it and
//     other sites cannot send it. Sessions live in memory, are bounded in
//     number and expire; logging out forgets the session. With no token
//     configured the API is open (to loopback and api.allowed_hosts only)
//     and so is the console.
//   - Every action is a POST form that carries the session's CSRF token and,
//     when the browser sends Origin, must come from the console's own
//     origin.
//   - Every response says Content-Security-Policy default-src 'self' (no
//     inline script or style, no frames), X-Frame-Options DENY,
//     X-Content-Type-Options nosniff, Referrer-Policy same-origin (with
//     no-referrer browsers send Origin: null on forms) and
//     Cache-Control no-store. Pages are html/template, which escapes every
//     value by context. Assets are embedded: the console works offline and
//     loads nothing from elsewhere.
//   - Inputs are bounded: form bodies, query values and path parts have
//     size limits, and lists are paged.
package console

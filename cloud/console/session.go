package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/config"
)

// Cookie and header names.
const (
	sessionCookie = "plantroom_session"
	// anonCookie carries the CSRF token of forms shown before sign-in (the
	// sign-in form, the language switch on it): a double-submit token.
	anonCookie = "plantroom_csrf"
	langCookie = "plantroom_lang"
	// CSRFHeader is where scripts put the session's CSRF token on requests
	// that change something (the API checks it on cookie-authenticated
	// requests); forms send it as the field CSRFField.
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf"
)

// Session is a signed-in staff member's browser session. It lives in the
// memory of the process that signed it in: a restart signs everyone out.
type Session struct {
	Staff     *config.Staff
	Principal *api.Principal
	CSRF      string
	Created   time.Time
	Seen      time.Time
}

// sessions are the console's sessions, keyed by the SHA-256 of the cookie
// value (the cookie itself is never kept).
type sessions struct {
	idle, absolute time.Duration
	max            int
	now            func() time.Time
	rules          *config.RuleFile // for the principals (api.NewPrincipal)

	mu sync.Mutex
	m  map[[32]byte]*Session
}

func newSessions(idle, absolute time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{idle: idle, absolute: absolute, max: max, now: now, m: map[[32]byte]*Session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for staff s and returns the cookie value.
func (ss *sessions) create(s *config.Staff) (string, *Session) {
	id := randomToken()
	now := ss.now()
	sess := &Session{Staff: s, Principal: api.NewPrincipal(*s, ss.rules), CSRF: randomToken(), Created: now, Seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= ss.max {
		ss.sweepLocked(now)
		for len(ss.m) >= ss.max { // still full: drop the least recently seen
			var oldest [32]byte
			var seen time.Time
			for k, v := range ss.m {
				if seen.IsZero() || v.Seen.Before(seen) {
					oldest, seen = k, v.Seen
				}
			}
			delete(ss.m, oldest)
		}
	}
	ss.m[sha256.Sum256([]byte(id))] = sess
	return id, sess
}

// errExpired: the cookie names no live session (expired, signed out, or
// from before a restart).
type lookup int

const (
	noSession lookup = iota
	liveSession
	expiredSession
)

// get finds the session of r and marks it seen.
func (ss *sessions) get(r *http.Request) (*Session, lookup) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, noSession
	}
	key := sha256.Sum256([]byte(c.Value))
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[key]
	if !ok {
		return nil, expiredSession
	}
	if now.Sub(s.Seen) > ss.idle || now.Sub(s.Created) > ss.absolute {
		delete(ss.m, key)
		return nil, expiredSession
	}
	s.Seen = now
	return s, liveSession
}

// end removes the session of r.
func (ss *sessions) end(r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		ss.mu.Lock()
		delete(ss.m, sha256.Sum256([]byte(c.Value)))
		ss.mu.Unlock()
	}
}

func (ss *sessions) sweepLocked(now time.Time) {
	for k, s := range ss.m {
		if now.Sub(s.Seen) > ss.idle || now.Sub(s.Created) > ss.absolute {
			delete(ss.m, k)
		}
	}
}

// count is the number of live sessions (for tests and metrics).
func (ss *sessions) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.sweepLocked(ss.now())
	return len(ss.m)
}

func sameToken(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// safeMethod: methods that change nothing and need no CSRF token.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// Errors the API answers for cookie-authenticated requests.
var (
	errSessionExpired = &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized,
		Message: "session expired: sign in to the console again"}
	errCSRF = &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
		Message: "missing or invalid CSRF token: send the session's token in " + CSRFHeader}
)

// SessionPrincipal lets the API answer requests carrying a console session
// cookie (api.Sessions): the staff member of the session, nil without a
// cookie, an error for an expired session or a state-changing request
// without the session's CSRF token.
func (c *Console) SessionPrincipal(r *http.Request) (*api.Principal, error) {
	s, st := c.sessions.get(r)
	switch st {
	case noSession:
		return nil, nil
	case expiredSession:
		return nil, errSessionExpired
	}
	if !safeMethod(r.Method) && !sameToken(s.CSRF, r.Header.Get(CSRFHeader)) {
		return nil, errCSRF
	}
	return s.Principal, nil
}

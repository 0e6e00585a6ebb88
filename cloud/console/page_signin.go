package console

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/config"
)

// dummyHash is compared against when the staff id is unknown or has no
// password, so that a wrong id takes as long as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("plantroom-no-such-account"), bcrypt.DefaultCost)

type signinData struct {
	Staff   string
	Next    string
	Expired bool
	Error   string // catalogue key
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request, sess *Session) {
	if sess != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d := signinData{Next: r.URL.Query().Get("next"), Expired: r.URL.Query().Get("expired") == "1"}
	c.render(w, r, nil, "signin", &page{Data: d})
}

// signin checks a staff id and password: throttled per account and per
// address, logged either way (the audit trail of sign-ins).
func (c *Console) signin(w http.ResponseWriter, r *http.Request, _ *Session) {
	id := strings.TrimSpace(r.PostFormValue("staff"))
	pw := r.PostFormValue("password")
	next := r.PostFormValue("next")
	addr := clientAddr(r)
	again := func(status int, key string) {
		c.render(w, r, nil, "signin", &page{Status: status, Data: signinData{Staff: id, Next: next, Error: key}})
	}
	if len(id) > 64 || len(pw) > 72 {
		c.log.Info("console sign-in refused", "audit", "signin", "outcome", "invalid", "staff", truncate(id, 64), "addr", addr)
		again(http.StatusBadRequest, "signin.invalid")
		return
	}
	if locked, until := c.address.locked(addr); locked {
		c.log.Warn("console sign-in refused", "audit", "signin", "outcome", "address_locked", "staff", id, "addr", addr, "until", until)
		again(http.StatusTooManyRequests, "signin.locked")
		return
	}
	if locked, until := c.account.locked(id); locked {
		c.log.Warn("console sign-in refused", "audit", "signin", "outcome", "account_locked", "staff", id, "addr", addr, "until", until)
		again(http.StatusTooManyRequests, "signin.locked")
		return
	}
	staff := c.findStaff(id)
	hash := dummyHash
	if staff != nil && staff.PasswordHash != "" {
		hash = []byte(staff.PasswordHash)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pw)) != nil || staff == nil || staff.PasswordHash == "" {
		lockedAcct := c.account.fail(id)
		lockedAddr := c.address.fail(addr)
		c.log.Warn("console sign-in failed", "audit", "signin", "outcome", "bad_credentials", "staff", id, "known", staff != nil,
			"addr", addr, "locks_account", lockedAcct, "locks_address", lockedAddr)
		again(http.StatusUnauthorized, "signin.wrong")
		return
	}
	c.account.reset(id)
	value, _ := c.sessions.create(staff)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true,
		Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
	c.log.Info("console sign-in", "audit", "signin", "outcome", "ok", "staff", staff.ID, "role", staff.Role, "addr", addr)
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request, sess *Session) {
	if sess != nil {
		c.log.Info("console sign-out", "audit", "signout", "staff", sess.Staff.ID, "addr", clientAddr(r))
	}
	c.sessions.end(r)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// setLanguage keeps the viewer's language in a cookie for a year.
func (c *Console) setLanguage(w http.ResponseWriter, r *http.Request, _ *Session) {
	lang := r.PostFormValue("lang")
	ok := false
	for _, l := range Languages {
		ok = ok || l == lang
	}
	if ok {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/", MaxAge: 365 * 24 * 3600,
			Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) findStaff(id string) *config.Staff {
	for i := range c.org.Staff {
		if c.org.Staff[i].ID == id {
			return &c.org.Staff[i]
		}
	}
	return nil
}

// toSignIn sends the viewer to the sign-in page, back here afterwards;
// expired says their session ended (the page tells them).
func (c *Console) toSignIn(w http.ResponseWriter, r *http.Request, expired bool) {
	q := url.Values{}
	hx := r.Header.Get("HX-Request") == "true"
	switch {
	case hx:
		// A partial update: come back to the page it was part of.
		if u, err := url.Parse(r.Header.Get("HX-Current-URL")); err == nil && u.Path != "" {
			q.Set("next", u.RequestURI())
		}
	case r.Method == http.MethodGet:
		q.Set("next", r.URL.RequestURI())
	}
	if expired {
		q.Set("expired", "1")
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
			Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
	}
	target := "/signin"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	if hx {
		// A partial update found the session gone: reload the whole page there.
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// csrfToken is the token forms of this page carry: the session's, or for a
// visitor not signed in a double-submit token kept in its own cookie.
func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request, sess *Session) string {
	if sess != nil {
		return sess.CSRF
	}
	if ck, err := r.Cookie(anonCookie); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	t := randomToken()
	http.SetCookie(w, &http.Cookie{Name: anonCookie, Value: t, Path: "/", HttpOnly: true,
		Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
	r.AddCookie(&http.Cookie{Name: anonCookie, Value: t}) // a second render in this request reuses it
	return t
}

// validCSRF checks the token of a state-changing request: the form field or
// the header must equal the session's token, or, without a session, the
// visitor's double-submit cookie.
func (c *Console) validCSRF(r *http.Request, sess *Session) bool {
	got := r.Header.Get(CSRFHeader)
	if got == "" && isUpload(r) && strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		// A step form with photos: the whole form is read here (photos past
		// 8 MiB go to temporary files, removed by the handler).
		r.Body = http.MaxBytesReader(nil, r.Body, c.uploadLimit())
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			return false
		}
		got = r.PostFormValue(CSRFField)
	} else if got == "" && isResidentUpload(r) {
		// A resident's request with photos, read the same way.
		r.Body = http.MaxBytesReader(nil, r.Body, c.residentUploadLimit())
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			return false
		}
		got = r.PostFormValue(CSRFField)
	} else if got == "" {
		r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
		got = r.PostFormValue(CSRFField)
	}
	if sess != nil {
		return sameToken(sess.CSRF, got)
	}
	ck, err := r.Cookie(anonCookie)
	return err == nil && sameToken(ck.Value, got)
}

// safeNext keeps a redirect target on this site: a local absolute path, not
// "//host" or a URL.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

// clientAddr is the client's IP address: the API server's reading of it
// (X-Forwarded-For only from api.trusted_proxies), else the connection's.
func clientAddr(r *http.Request) string {
	if ip := api.ClientIP(r); ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

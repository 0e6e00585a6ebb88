package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFiles embed.FS

// views are the parsed pages: each page template on the shared layout.
type views struct {
	pages map[string]*template.Template
}

// Pages with their template file (templates/<name>.html). A page template
// defines "title" and "content"; fragment templates define the blocks that
// short polling replaces.
var pageNames = []string{"signin", "error", "hq", "project", "device", "alarms", "labels", "my", "request", "track", "requests", "order"}

func parseViews(assets *assetSet) (*views, error) {
	funcs := template.FuncMap{
		"asset": assets.URL,
		// json embeds data for the page's script in a <script
		// type="application/json"> block (not executed; escaped for HTML).
		"json": func(v any) (template.JS, error) {
			b, err := json.Marshal(v)
			if err != nil {
				return "", err
			}
			return template.JS(b), nil
		},
		"query": func(kv ...string) template.URL {
			q := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] != "" {
					q.Set(kv[i], kv[i+1])
				}
			}
			return template.URL(q.Encode())
		},
		"lower": strings.ToLower,
		"list5": func() []int { return []int{1, 2, 3, 4, 5} },
		// dict builds a map for a shared piece: {{template "x" dict "K" v}}.
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, fmt.Errorf("dict wants key-value pairs")
			}
			m := make(map[string]any, len(kv)/2)
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict key %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
		"deref2": func(p *bool) bool { return p != nil && *p },
		"deref3": func(p *time.Time) time.Time {
			if p == nil {
				return time.Time{}
			}
			return *p
		},
		"deref": func(p *float64) float64 {
			if p == nil {
				return 0
			}
			return *p
		},
	}
	v := &views{pages: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("cannot parse console page %q: %w", name, err)
		}
		v.pages[name] = t
	}
	return v, nil
}

// Nav is the navigation of the layout.
type Nav struct {
	HQ       bool
	Projects []navProject
	Active   string // "hq", "alarms", or a project id
}

type navProject struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// page is what every page template gets: the locale, the viewer, the CSRF
// token for its forms, the navigation, and the page's own data.
type page struct {
	L       *Locale
	Sess    *Session
	CSRF    string
	Nav     Nav
	Path    string // the request's path and query, for the language switch
	Notice  string // a catalogue key shown above the content
	Data    any
	Title   string
	Status  int
	Message string // an error's detail (escaped)
}

// render writes page name with data, status 200 unless p.Status says.
func (c *Console) render(w http.ResponseWriter, r *http.Request, sess *Session, name string, p *page) {
	if p.L == nil {
		p.L = c.cats.locale(languageOf(r), nil)
	}
	p.Sess = sess
	p.CSRF = c.csrfToken(w, r, sess)
	p.Path = r.URL.RequestURI()
	if sess != nil && p.Nav.Projects == nil {
		p.Nav = c.nav(r, sess, p.Nav.Active)
	}
	var buf bytes.Buffer
	if err := c.views.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.log.Error("console: cannot render page", "page", name, "err", err)
		http.Error(w, "cannot render page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if p.Status != 0 {
		w.WriteHeader(p.Status)
	}
	w.Write(buf.Bytes())
}

// fragment writes one named block of page name (for short polling).
func (c *Console) fragment(w http.ResponseWriter, r *http.Request, sess *Session, name, block string, p *page) {
	if p.L == nil {
		p.L = c.cats.locale(languageOf(r), nil)
	}
	p.Sess = sess
	p.CSRF = c.csrfToken(w, r, sess)
	var buf bytes.Buffer
	if err := c.views.pages[name].ExecuteTemplate(&buf, block, p); err != nil {
		c.log.Error("console: cannot render fragment", "page", name, "block", block, "err", err)
		http.Error(w, "cannot render fragment", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// nav lists the projects the viewer may see: what GET /projects answers.
func (c *Console) nav(r *http.Request, sess *Session, active string) Nav {
	n := Nav{HQ: sess.Principal.HQ(), Active: active, Projects: []navProject{}}
	var out struct {
		Projects []navProject `json:"projects"`
	}
	if err := c.get(r, sess, "/projects", &out); err != nil {
		c.log.Warn("console: cannot list the viewer's projects", "staff", sess.Staff.ID, "err", err)
		return n
	}
	n.Projects = out.Projects
	return n
}

// fail shows the error page with status and the catalogue text of key.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, sess *Session, status int, key string) {
	c.render(w, r, sess, "error", &page{Status: status, Notice: key})
}

// failAPI shows what an API error means for the viewer: sign in again, not
// found, or the storage being down, with what to do.
func (c *Console) failAPI(w http.ResponseWriter, r *http.Request, sess *Session, err error) {
	switch st := statusOf(err); st {
	case http.StatusUnauthorized:
		c.toSignIn(w, r, true)
	case http.StatusNotFound:
		c.fail(w, r, sess, st, "error.not_found")
	case http.StatusForbidden:
		c.fail(w, r, sess, st, "error.forbidden")
	case http.StatusBadRequest:
		p := &page{Status: st, Notice: "error.bad_request"}
		var ae *APIError
		if e, ok := err.(*APIError); ok {
			ae = e
			p.Message = ae.Message
		}
		c.render(w, r, sess, "error", p)
	default:
		c.log.Error("console: the API failed", "path", r.URL.Path, "err", err)
		c.fail(w, r, sess, http.StatusServiceUnavailable, "error.unavailable")
	}
}

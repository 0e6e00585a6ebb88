package console

import (
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/plantroom/plantroom/cloud/access"
)

// A project's resident requests for its staff (/projects/{project}/requests):
// the public request link with its QR code for the lobby poster and the
// button that rotates it (project manager, HQ admin: access.Manage), and the
// requests filed, newest first, phones masked (GET /resident-requests). The
// whole number is on the API's single request (access.Contact).

type requestsData struct {
	Project  projectHead
	Link     string       // the form's full address; "" when the viewer may not manage it
	QR       template.URL // the link as a QR code
	LinkAt   time.Time
	LinkBy   string
	Requests []requestView
}

type projectHead struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type requestView struct {
	ID          string    `json:"id"`
	WorkOrder   string    `json:"work_order"`
	State       string    `json:"state"`
	Category    string    `json:"category"`
	Location    string    `json:"location"`
	Description string    `json:"description"`
	Phone       string    `json:"phone"`
	SubmittedAt time.Time `json:"submitted_at"`
	Rating      int       `json:"rating"`
	Comment     string    `json:"comment"`
}

type linkView struct {
	Path      string    `json:"path"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

func (c *Console) requestsPage(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("project")
	pe := url.PathEscape(id)
	var d requestsData
	if err := c.get(r, sess, "/projects/"+pe, &d.Project); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	var list struct {
		Requests []requestView `json:"requests"`
	}
	if err := c.get(r, sess, "/resident-requests?"+url.Values{"project": {id}, "limit": {"200"}}.Encode(), &list); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	d.Requests = list.Requests
	if sess.Principal.May(access.Manage, access.ProjectOf(sess.Principal.Company, id)) {
		var l linkView
		if err := c.get(r, sess, "/projects/"+pe+"/resident-link", &l); err != nil {
			c.failAPI(w, r, sess, err)
			return
		}
		d.Link, d.LinkAt, d.LinkBy = c.baseURL(r)+l.Path, l.CreatedAt, l.CreatedBy
		png, err := qrPNG(d.Link)
		if err != nil {
			c.log.Error("console: cannot draw the request link's QR code", "project", id, "err", err)
		} else {
			d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
		}
	}
	notice := ""
	if r.URL.Query().Get("rotated") == "1" {
		notice = "requests.rotated"
	}
	c.render(w, r, sess, "requests", &page{L: c.cats.locale(languageOf(r), c.zone(id)), Nav: Nav{Active: id}, Notice: notice, Data: &d})
}

func (c *Console) rotateLink(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("project")
	if err := c.call(r, sess, http.MethodPost, "/projects/"+url.PathEscape(id)+"/resident-link", nil, nil); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/projects/"+url.PathEscape(id)+"/requests?rotated=1", http.StatusSeeOther)
}

// residentStats is GET /stats/residents: resident requests per project
// (HQ overview).
type residentStats struct {
	Projects []residentRow `json:"projects"`
	Total    residentRow   `json:"total"`
}

type residentRow struct {
	Project      string         `json:"project"`
	Name         string         `json:"name"`
	Requests     int            `json:"requests"`
	ByCategory   map[string]int `json:"by_category"`
	Resolved     int            `json:"resolved"`
	MTTA         *float64       `json:"mean_time_to_respond_minutes"`
	MTTR         *float64       `json:"mean_time_to_resolve_minutes"`
	Rated        int            `json:"rated"`
	Satisfaction *float64       `json:"satisfaction"`
}

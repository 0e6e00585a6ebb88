package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plantroom/plantroom/cloud/resident"
)

// Residents' pages (no account): the repair request form a project's
// public link opens (/r/{link}, from the QR poster in the lobby) and the
// private tracking page its answer leads to (/t/{token}), which takes the
// rating once the work is resolved. Both are thin over the API's public
// routes (/api/v1/public/…), which check the link or token, the limits
// and the honeypot; the forms carry the console's CSRF token like every
// other. Phone first: one column, large controls, the layout's small
// assets only (no charts).

type residentForm struct {
	Link        string
	Project     string
	ProjectName string
	Categories  []string
	Limits      struct{ Location, Description, Phone int }
	// MaxPhotos and MaxMB are the photo limits the form states.
	MaxPhotos, MaxMB int
	// Values of a form sent back with a problem.
	Category, Location, Description, Phone string
	Problem                                string // the API's message, escaped by the template
	Limited                                bool   // over a rate limit
	RetryMin                               int    // minutes until the next request is taken
}

type formAnswer struct {
	Project     string   `json:"project"`
	ProjectName string   `json:"project_name"`
	Categories  []string `json:"categories"`
	Limits      struct {
		Location    int `json:"location"`
		Description int `json:"description"`
		Phone       int `json:"phone"`
	} `json:"limits"`
}

func (c *Console) residentForm(r *http.Request, link string) (*residentForm, error) {
	var a formAnswer
	if err := c.get(r, nil, "/public/requests/"+url.PathEscape(link), &a); err != nil {
		return nil, err
	}
	f := &residentForm{Link: link, Project: a.Project, ProjectName: a.ProjectName, Categories: a.Categories}
	f.Limits.Location, f.Limits.Description, f.Limits.Phone = a.Limits.Location, a.Limits.Description, a.Limits.Phone
	f.MaxPhotos, f.MaxMB = resident.MaxPhotos, int(c.photoMax>>20)
	return f, nil
}

// failResident shows a resident what went wrong, in words for residents.
func (c *Console) failResident(w http.ResponseWriter, r *http.Request, sess *Session, err error, notFound string) {
	switch statusOf(err) {
	case http.StatusNotFound:
		c.fail(w, r, sess, http.StatusNotFound, notFound)
	default:
		c.log.Error("console: the API failed", "path", r.URL.Path, "err", err)
		c.fail(w, r, sess, http.StatusServiceUnavailable, "resident.unavailable")
	}
}

func (c *Console) requestPage(w http.ResponseWriter, r *http.Request, sess *Session) {
	f, err := c.residentForm(r, r.PathValue("link"))
	if err != nil {
		c.failResident(w, r, sess, err, "resident.link_gone")
		return
	}
	c.render(w, r, sess, "request", &page{L: c.cats.locale(languageOf(r), c.zone(f.Project)), Data: f})
}

func (c *Console) submitRequest(w http.ResponseWriter, r *http.Request, sess *Session) {
	link := r.PathValue("link")
	f, err := c.residentForm(r, link)
	if err != nil {
		c.failResident(w, r, sess, err, "resident.link_gone")
		return
	}
	f.Category, f.Location, f.Description, f.Phone = r.PostFormValue("category"), r.PostFormValue("location"), r.PostFormValue("description"), r.PostFormValue("phone")
	body := map[string]string{"category": f.Category, "location": f.Location, "description": f.Description, "phone": f.Phone,
		"website": r.PostFormValue("website")}
	var out struct {
		Token string `json:"token"`
		Path  string `json:"path"`
	}
	var files []*multipart.FileHeader
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll()
		for _, fh := range r.MultipartForm.File["photos"] {
			if fh.Size > 0 {
				files = append(files, fh)
			}
		}
	}
	if len(files) > resident.MaxPhotos {
		f.Problem = fmt.Sprintf("%d photos, at most %d", len(files), resident.MaxPhotos)
		c.render(w, r, sess, "request", &page{Status: http.StatusBadRequest, Notice: "resident.photos_count", Data: f})
		return
	}
	if len(files) == 0 {
		err = c.call(r, sess, http.MethodPost, "/public/requests/"+url.PathEscape(link), body, &out)
	} else {
		err = c.submitWithPhotos(r, sess, link, body, files, &out)
	}
	var ae *APIError
	switch {
	case err == nil:
		http.Redirect(w, r, out.Path+"?new=1", http.StatusSeeOther)
		return
	case errors.As(err, &ae) && (ae.Status == http.StatusRequestEntityTooLarge || ae.Status == http.StatusUnsupportedMediaType):
		// A refused photo: the form comes back with its text, and the
		// reason in the resident's language (the API's words below it).
		key := map[string]string{"photo_heic": "photo.err.heic", "photo_type": "photo.err.type"}[ae.Code]
		if key == "" {
			key = "photo.err.too_large"
		}
		f.Problem = ae.Message
		c.render(w, r, sess, "request", &page{Status: ae.Status, Notice: key, Data: f})
	case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
		f.Limited, f.RetryMin = true, retryMinutes(ae.Message)
		c.render(w, r, sess, "request", &page{Status: http.StatusTooManyRequests, Data: f})
	case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
		f.Problem = ae.Message
		if ae.Code == "refused" {
			f.Problem = ""
			c.render(w, r, sess, "request", &page{Status: http.StatusBadRequest, Notice: "resident.refused", Data: f})
			return
		}
		c.render(w, r, sess, "request", &page{Status: http.StatusBadRequest, Notice: "resident.fix", Data: f})
	default:
		c.failResident(w, r, sess, err, "resident.link_gone")
	}
}

// submitWithPhotos files the request with its photos as the API's
// multipart body (part "request" JSON, parts "photo"), streamed.
func (c *Console) submitWithPhotos(r *http.Request, sess *Session, link string, body map[string]string, files []*multipart.FileHeader, out any) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(func() error {
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="request"`)
			h.Set("Content-Type", "application/json")
			part, err := mw.CreatePart(h)
			if err != nil {
				return err
			}
			if err := json.NewEncoder(part).Encode(body); err != nil {
				return err
			}
			for _, fh := range files {
				h := textproto.MIMEHeader{}
				h.Set("Content-Disposition", `form-data; name="photo"; filename="photo"`)
				h.Set("Content-Type", "application/octet-stream")
				part, err := mw.CreatePart(h)
				if err != nil {
					return err
				}
				src, err := fh.Open()
				if err != nil {
					return fmt.Errorf("cannot read uploaded photo %q: %w", fh.Filename, err)
				}
				_, err = io.Copy(part, src)
				src.Close()
				if err != nil {
					return err
				}
			}
			return mw.Close()
		}())
	}()
	defer pr.Close()
	return c.send(r, sess, http.MethodPost, "/public/requests/"+url.PathEscape(link), mw.FormDataContentType(), pr, out)
}

// isResidentUpload reports a resident's request form with photos.
func isResidentUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/r/") &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data")
}

// residentUploadLimit is the largest request form: every photo at the
// limit, and the rest of the form.
func (c *Console) residentUploadLimit() int64 {
	return int64(resident.MaxPhotos)*(c.photoMax+4<<10) + 64<<10
}

// retryMinutes reads "try again in 45m0s" from a rate limit's message
// (rounded up to whole minutes; 1 at least).
func retryMinutes(msg string) int {
	_, after, ok := strings.Cut(msg, "try again in ")
	if !ok {
		return 60
	}
	d, err := time.ParseDuration(strings.TrimSpace(after))
	if err != nil {
		return 60
	}
	return max(1, int((d+time.Minute-1)/time.Minute))
}

type trackView struct {
	Token       string
	Project     string    `json:"project"`
	ProjectName string    `json:"project_name"`
	Category    string    `json:"category"`
	Location    string    `json:"location"`
	Description string    `json:"description"`
	Phone       string    `json:"phone"`
	Status      string    `json:"status"`
	SubmittedAt time.Time `json:"submitted_at"`
	ResolvedAt  time.Time `json:"resolved_at"`
	CanRate     bool      `json:"can_rate"`
	Rating      int       `json:"rating"`
	Comment     string    `json:"comment"`
	Photos      []string  `json:"photos"` // the resident's own, through the token
	Steps       []trackStep
	Problem     string
}

type trackStep struct {
	Key  string
	Done bool
	Now  bool
}

// trackSteps are the statuses a resident follows, in order.
var trackSteps = []string{"submitted", "assigned", "in_progress", "resolved"}

func (c *Console) trackPage(w http.ResponseWriter, r *http.Request, sess *Session) {
	c.showTrack(w, r, sess, http.StatusOK, "", "")
}

func (c *Console) showTrack(w http.ResponseWriter, r *http.Request, sess *Session, status int, notice, problem string) {
	token := r.PathValue("token")
	var t trackView
	if err := c.get(r, sess, "/public/track/"+url.PathEscape(token), &t); err != nil {
		c.failResident(w, r, sess, err, "resident.track_gone")
		return
	}
	t.Token, t.Problem = token, problem
	reached := true
	for _, k := range trackSteps {
		t.Steps = append(t.Steps, trackStep{Key: k, Done: reached, Now: k == t.Status})
		if k == t.Status {
			reached = false
		}
	}
	if notice == "" {
		switch {
		case r.URL.Query().Get("new") == "1":
			notice = "track.filed"
		case r.URL.Query().Get("rated") == "1":
			notice = "track.thanks"
		}
	}
	// Times in the project's own zone, as its residents read them.
	c.render(w, r, sess, "track", &page{L: c.cats.locale(languageOf(r), c.zone(t.Project)), Status: status, Notice: notice, Data: &t})
}

func (c *Console) rateRequest(w http.ResponseWriter, r *http.Request, sess *Session) {
	token := r.PathValue("token")
	rating, _ := strconv.Atoi(r.PostFormValue("rating"))
	body := map[string]any{"rating": rating, "comment": r.PostFormValue("comment")}
	err := c.call(r, sess, http.MethodPost, "/public/track/"+url.PathEscape(token)+"/rating", body, nil)
	var ae *APIError
	switch {
	case err == nil:
		http.Redirect(w, r, "/t/"+url.PathEscape(token)+"?rated=1", http.StatusSeeOther)
	case errors.As(err, &ae) && ae.Status == http.StatusConflict:
		c.showTrack(w, r, sess, http.StatusConflict, "track.rate_conflict", "")
	case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
		c.showTrack(w, r, sess, http.StatusBadRequest, "track.rate_invalid", ae.Message)
	default:
		c.failResident(w, r, sess, err, "resident.track_gone")
	}
}

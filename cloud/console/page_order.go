package console

import (
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/plantroom/plantroom/cloud/workorder"
)

// The work-order page: the order, its device and where it is, the alarm
// and the readings that caused it, its history (every step with who, when,
// note and photos), and a button for every step the lifecycle allows now
// and the viewer's role may take (workorder.Moves), with a note and photos
// (taken with the phone's camera). A step posts to /workorders/{id}/move:
// the photos go to POST /api/v1/workorders/{id}/photos one by one, then the
// step to POST /api/v1/workorders/{id}/transitions naming them.

type orderData struct {
	Order    orderView
	Device   *deviceView // nil when the subject is no device the API knows (a gateway)
	Building string      // the device's building's name
	Project  string      // the project's name
	Alarm    *alarmRecord
	Moves    []string
	Due      bool
	Late     bool
	H, M     int
	Now      time.Time
	// MaxPhotos and MaxMB are the limits the form states.
	MaxPhotos int
	MaxMB     int64
}

// alarmRecord is an alarm with its steps (GET /devices/{device}/history).
type alarmRecord struct {
	alarmView
	Steps []struct {
		Kind      string    `json:"kind"`
		At        time.Time `json:"at"`
		Who       string    `json:"who"`
		Note      string    `json:"note"`
		Value     float64   `json:"value"`
		ReadingTS time.Time `json:"reading_ts"`
	} `json:"steps"`
}

func (c *Console) orderPage(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("workorder")
	d := orderData{Now: c.now(), MaxPhotos: workorder.MaxPhotos, MaxMB: c.photoMax >> 20}
	if err := c.get(r, sess, "/workorders/"+url.PathEscape(id), &d.Order); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	o := &d.Order
	var g errgroup.Group
	var proj projectView
	g.Go(func() error { return c.get(r, sess, "/projects/"+url.PathEscape(o.Project), &proj) })
	var dev deviceView
	var hist struct {
		Alarms []alarmRecord `json:"alarms"`
	}
	devErr, histErr := errors.New("none"), errors.New("none")
	if o.Device != "" {
		g.Go(func() error { devErr = c.get(r, sess, "/devices/"+url.PathEscape(o.Device), &dev); return nil })
		if o.AlarmID != "" {
			since := o.RaisedAt.Add(-time.Minute).UTC().Format(time.RFC3339)
			until := o.RaisedAt.Add(time.Minute).UTC().Format(time.RFC3339)
			path := "/devices/" + url.PathEscape(o.Device) + "/history?" + url.Values{"since": {since}, "until": {until}}.Encode()
			g.Go(func() error { histErr = c.get(r, sess, path, &hist); return nil })
		}
	}
	if err := g.Wait(); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	d.Project = proj.Name
	if devErr == nil {
		d.Device = &dev
		for _, b := range proj.Buildings {
			if b.ID == dev.Building {
				d.Building = b.Name
			}
		}
	}
	if histErr == nil {
		for i := range hist.Alarms {
			if hist.Alarms[i].ID == o.AlarmID {
				d.Alarm = &hist.Alarms[i]
			}
		}
	}
	wo := workorder.WorkOrder{Company: sess.Principal.Company, Project: o.Project, Assignee: o.Assignee, State: o.State}
	for _, to := range workorder.Moves(sess.Principal.May, &wo) {
		if to != workorder.StateAssigned { // reassignment needs the roster: the project page
			d.Moves = append(d.Moves, to)
		}
	}
	if !o.SLADue.IsZero() && o.Open() {
		d.Due, d.Late, d.H, d.M = countdown(o.SLADue, d.Now)
	}
	notice := ""
	switch r.URL.Query().Get("done") {
	case "moved":
		notice = "my.moved"
	case "arrived":
		notice = "order.arrived_now"
	}
	l := c.cats.locale(languageOf(r), c.zone(o.Project))
	c.render(w, r, sess, "order", &page{L: l, Nav: Nav{Active: "my"}, Data: d, Notice: notice})
}

// countdown is the time left until due (or, late, since).
func countdown(due, now time.Time) (ok, late bool, h, m int) {
	left := due.Sub(now).Truncate(time.Minute)
	late = left < 0
	if late {
		left = -left
	}
	return true, late, int(left / time.Hour), int(left % time.Hour / time.Minute)
}

// uploadLimit is the largest step form: every photo at the limit, and the
// rest of the form.
func (c *Console) uploadLimit() int64 { return int64(workorder.MaxPhotos)*c.photoMax + 1<<20 }

// isUpload reports a step form, which may carry photos.
func isUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/workorders/") && strings.HasSuffix(r.URL.Path, "/move")
}

// moveWithPhotos takes a step from the work-order page: photos first
// (each refused one is shown with the API's reason), then the step.
func (c *Console) moveWithPhotos(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("workorder")
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll()
	}
	var files []*multipart.FileHeader
	if r.MultipartForm != nil {
		for _, fh := range r.MultipartForm.File["photos"] {
			if fh.Size > 0 {
				files = append(files, fh)
			}
		}
	}
	if len(files) > workorder.MaxPhotos {
		c.render(w, r, sess, "error", &page{Status: http.StatusBadRequest, Notice: "photo.err.count",
			Message: fmt.Sprintf("%d photos, at most %d a step", len(files), workorder.MaxPhotos)})
		return
	}
	var ids []string
	for _, fh := range files {
		f, err := fh.Open()
		if err != nil {
			c.failAPI(w, r, sess, fmt.Errorf("cannot read uploaded photo %q: %w", fh.Filename, err))
			return
		}
		var ph struct {
			ID string `json:"id"`
		}
		err = c.send(r, sess, http.MethodPost, "/workorders/"+url.PathEscape(id)+"/photos", "application/octet-stream", f, &ph)
		f.Close()
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) && (ae.Status == http.StatusRequestEntityTooLarge || ae.Status == http.StatusUnsupportedMediaType) {
				key := map[string]string{"photo_heic": "photo.err.heic", "photo_type": "photo.err.type"}[ae.Code]
				if key == "" {
					key = "photo.err.too_large"
				}
				c.render(w, r, sess, "error", &page{Status: ae.Status, Notice: key, Message: fh.Filename + ": " + ae.Message})
				return
			}
			c.failAPI(w, r, sess, err)
			return
		}
		ids = append(ids, ph.ID)
	}
	body := workorder.TransitionRequest{To: r.PostFormValue("to"), Note: strings.TrimSpace(r.PostFormValue("note")), Photos: ids}
	if err := c.call(r, sess, http.MethodPost, "/workorders/"+url.PathEscape(id)+"/transitions", body, nil); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			c.render(w, r, sess, "error", &page{Status: http.StatusConflict, Notice: "my.conflict", Message: ae.Message})
			return
		}
		c.failAPI(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/workorders/"+url.PathEscape(id)+"?done=moved", http.StatusSeeOther)
}

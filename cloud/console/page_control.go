package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/plantroom/plantroom/cloud/access"
)

// Remote control on the device page: for each writable point of the
// device's template (GET /devices/{device} lists them) a control, shown
// only when the access policy lets the viewer command the device; a
// confirmation step that asks for the reason; then the command's progress,
// which the page polls (GET /devices/{device}/commands/{command}) until it
// reaches a final state. The API (POST /devices/{device}/commands) checks
// and refuses; the page shows its refusal.

// control is one writable point on the page.
type control struct {
	Point    string
	Unit     string
	Switch   bool // allowed values are 0 and 1: on/off buttons
	Allowed  []float64
	Min, Max *float64
	Value    *metricValue // current value, nil before the first reading
}

// pending is a command awaiting confirmation (or refused by the API).
type pending struct {
	Point  string
	Value  string
	Reason string
	Switch bool
	Unit   string
	Error  string // the API's refusal, shown as it says
}

// mayCommand asks the access policy (the same rule the command route's
// scope applies) whether the viewer may command a device of project.
func mayCommand(sess *Session, project string) bool {
	return sess.Principal.May(access.Command, access.Resource{Kind: access.KindDevice, Company: sess.Principal.Company, Project: project})
}

func controlsOf(d deviceView) []control {
	var out []control
	for _, w := range d.Writable {
		c := control{Point: w.Point, Unit: w.Unit, Allowed: w.Allowed, Min: w.Min, Max: w.Max,
			Switch: len(w.Allowed) == 2 && w.Allowed[0] == 0 && w.Allowed[1] == 1}
		if v, ok := d.Values[w.Point]; ok {
			c.Value = &v
		}
		out = append(out, c)
	}
	return out
}

// sendCommand is the control's form: without confirm it shows the
// confirmation step; with confirm it posts the command to the API and
// sends the viewer to the device page following it.
func (c *Console) sendCommand(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("device")
	pd := &pending{Point: r.PostFormValue("point"), Value: strings.TrimSpace(r.PostFormValue("value")), Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	if r.PostFormValue("confirm") != "1" {
		c.renderDevice(w, r, sess, id, pd, 0)
		return
	}
	body := map[string]any{"point": pd.Point, "reason": pd.Reason}
	if v, err := strconv.ParseFloat(pd.Value, 64); err == nil {
		body["value"] = v
	}
	var out commandView
	err := c.call(r, sess, http.MethodPost, "/devices/"+url.PathEscape(id)+"/commands", body, &out)
	switch st := statusOf(err); {
	case err == nil:
		http.Redirect(w, r, "/devices/"+url.PathEscape(id)+"?command="+url.QueryEscape(out.ID)+"#control", http.StatusSeeOther)
	case st == http.StatusBadRequest || st == http.StatusUnprocessableEntity:
		if ae, ok := err.(*APIError); ok {
			pd.Error = ae.Message
		}
		c.renderDevice(w, r, sess, id, pd, st)
	default:
		c.failAPI(w, r, sess, err)
	}
}

// commandProgress is the progress block alone, which the page polls.
func (c *Console) commandProgress(w http.ResponseWriter, r *http.Request, sess *Session) {
	dev, id := r.PathValue("device"), r.PathValue("command")
	var cmd commandView
	err := c.get(r, sess, "/commands/"+url.PathEscape(id), &cmd)
	if err == nil && cmd.Device != dev {
		err = &APIError{Status: http.StatusNotFound, Path: "/commands/" + id}
	}
	if err != nil {
		if statusOf(err) == http.StatusUnauthorized {
			c.toSignIn(w, r, true)
			return
		}
		w.WriteHeader(statusOf(err))
		c.fragment(w, r, sess, "device", "progress-error", &page{})
		return
	}
	c.fragment(w, r, sess, "device", "progress", &page{L: c.cats.locale(languageOf(r), c.zone(cmd.Project)), Data: deviceData{Device: deviceView{ID: dev}, Command: &cmd}})
}

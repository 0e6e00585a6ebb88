package console

import (
	"net/http"
	"net/url"
	"strings"
)

// The alarm feed: the alarms the viewer may see, newest first; the page's
// script follows GET /api/v1/alarms/stream (server-sent events, the same
// scope) and announces critical ones.

type alarmsData struct {
	Alarms []alarmView
	Names  map[string]string // device id → name, for the feed's script
}

func (c *Console) alarmsPage(w http.ResponseWriter, r *http.Request, sess *Session) {
	var out struct {
		Alarms []alarmView `json:"alarms"`
	}
	if err := c.get(r, sess, "/alarms?limit=200", &out); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	sortAlarms(out.Alarms)
	markAck(sess, out.Alarms)
	c.render(w, r, sess, "alarms", &page{Nav: Nav{Active: "alarms"}, Data: alarmsData{Alarms: out.Alarms}})
}

// ackAlarm acknowledges an alarm through the API (POST /alarms/{id}/ack)
// with the note from the form, then returns to where the viewer was.
func (c *Console) ackAlarm(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("alarm")
	note := strings.TrimSpace(r.PostFormValue("note"))
	body := map[string]string{"note": note}
	if err := c.call(r, sess, http.MethodPost, "/alarms/"+url.PathEscape(id)+"/ack", body, nil); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

package console

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/plantroom/plantroom/cloud/workorder"
)

// "My work orders", the technician's phone page: the open orders assigned
// to the viewer (GET /workorders?assignee=<me>), critical first, then by
// SLA due time with what is left of it, each with a button for every step
// the lifecycle allows now and the viewer's role may take. A step posts to
// /my/{workorder}/move, which calls POST /workorders/{id}/transitions.

type myData struct {
	Orders []myOrder
	Now    time.Time
}

type myOrder struct {
	orderView
	Moves []string // states the viewer may move it to (reassignment left to the project page)
	Due   bool     // it has an SLA due time
	Late  bool     // past it
	H, M  int      // hours and minutes until (or, Late, since) the due time
}

func (c *Console) myPage(w http.ResponseWriter, r *http.Request, sess *Session) {
	var out struct {
		WorkOrders []orderView `json:"work_orders"`
	}
	q := url.Values{"assignee": {sess.Staff.ID}, "limit": {"500"}}
	if err := c.get(r, sess, "/workorders?"+q.Encode(), &out); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	d := myData{Now: c.now()}
	for _, o := range out.WorkOrders {
		if !o.Open() {
			continue
		}
		wo := workorder.WorkOrder{Company: sess.Principal.Company, Project: o.Project, Assignee: o.Assignee, State: o.State}
		var moves []string
		for _, to := range workorder.Moves(sess.Principal.May, &wo) {
			if to != workorder.StateAssigned {
				moves = append(moves, to)
			}
		}
		m := myOrder{orderView: o, Moves: moves}
		if !o.SLADue.IsZero() {
			left := o.SLADue.Sub(d.Now).Truncate(time.Minute)
			m.Due, m.Late = true, left < 0
			if left < 0 {
				left = -left
			}
			m.H, m.M = int(left/time.Hour), int(left%time.Hour/time.Minute)
		}
		d.Orders = append(d.Orders, m)
	}
	sortMine(d.Orders)
	notice := ""
	if r.URL.Query().Get("moved") == "1" {
		notice = "my.moved"
	}
	c.render(w, r, sess, "my", &page{Nav: Nav{Active: "my"}, Data: d, Notice: notice})
}

// sortMine puts critical orders first, then the one due soonest (no due
// time last).
func sortMine(o []myOrder) {
	sort.SliceStable(o, func(i, j int) bool {
		ci, cj := o[i].Severity == "critical", o[j].Severity == "critical"
		if ci != cj {
			return ci
		}
		di, dj := o[i].SLADue, o[j].SLADue
		if di.IsZero() != dj.IsZero() {
			return !di.IsZero()
		}
		return di.Before(dj)
	})
}

// moveOrder takes one step of an order through the API; a step the
// lifecycle no longer allows (409) shows the API's answer, which names
// the steps allowed now.
func (c *Console) moveOrder(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("workorder")
	body := map[string]string{"to": r.PostFormValue("to"), "note": strings.TrimSpace(r.PostFormValue("note"))}
	if err := c.call(r, sess, http.MethodPost, "/workorders/"+url.PathEscape(id)+"/transitions", body, nil); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			c.render(w, r, sess, "error", &page{Status: http.StatusConflict, Notice: "my.conflict", Message: ae.Message})
			return
		}
		c.failAPI(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/my?moved=1", http.StatusSeeOther)
}

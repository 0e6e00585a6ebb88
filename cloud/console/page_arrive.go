package console

import (
	"net/http"
	"net/url"
)

// deviceLink answers the short address of a device, what its QR label
// carries. handle has already sent a visitor without a session to sign in,
// with this address as the place to come back to.
//
// Scanning in: when the viewer has work orders of this device assigned to
// them and still being worked on, scanning the label records their arrival
// on each (POST /workorders/{id}/arrival: who and when, once per
// assignment), and a single such order opens directly. A link followed from
// another site (Sec-Fetch-Site cross-site or same-site) records nothing: a
// page elsewhere must not be able to check a technician in.
func (c *Console) deviceLink(w http.ResponseWriter, r *http.Request, sess *Session) {
	dev := r.PathValue("device")
	devicePage := "/devices/" + url.PathEscape(dev)
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		http.Redirect(w, r, devicePage, http.StatusSeeOther)
		return
	}
	var out struct {
		WorkOrders []orderView `json:"work_orders"`
	}
	q := url.Values{"device": {dev}, "assignee": {sess.Staff.ID}, "limit": {"50"}}
	if err := c.get(r, sess, "/workorders?"+q.Encode(), &out); err != nil {
		// An unknown device or an API failure: the device page says which.
		http.Redirect(w, r, devicePage, http.StatusSeeOther)
		return
	}
	var mine []string
	for _, o := range out.WorkOrders {
		switch o.State {
		case "assigned", "accepted", "in_progress":
		default:
			continue
		}
		if err := c.call(r, sess, http.MethodPost, "/workorders/"+url.PathEscape(o.ID)+"/arrival", nil, nil); err != nil {
			c.log.Warn("console: cannot record arrival", "order", o.ID, "staff", sess.Staff.ID, "error", err)
			continue
		}
		mine = append(mine, o.ID)
	}
	if len(mine) == 1 {
		http.Redirect(w, r, "/workorders/"+url.PathEscape(mine[0])+"?done=arrived", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, devicePage, http.StatusSeeOther)
}

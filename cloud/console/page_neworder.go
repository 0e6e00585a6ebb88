package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/plantroom/plantroom/cloud/access"
)

// A manual work order from a device's page: the form on the device page
// (shown to staff whose role may create work orders in the device's
// project) posts here, and the order is opened through the API's
// POST /workorders with the device filled in. The API validates the
// fields and decides who may; a refusal shows as the API's answer.

// mayCreateOrder reports whether the viewer may open a manual work order in
// the project of a device they see (a device they see belongs to their
// company).
func mayCreateOrder(sess *Session, project string) bool {
	return sess.Principal.May(access.Create, access.ProjectOf(sess.Principal.Company, project))
}

func (c *Console) newOrder(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("device")
	var dev deviceView
	if err := c.get(r, sess, "/devices/"+url.PathEscape(id), &dev); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	body := map[string]any{
		"project":     dev.Project,
		"device":      dev.ID,
		"title":       strings.TrimSpace(r.PostFormValue("title")),
		"description": strings.TrimSpace(r.PostFormValue("description")),
	}
	if p := r.PostFormValue("priority"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			c.render(w, r, sess, "error", &page{Status: http.StatusBadRequest, Notice: "error.bad_request", Message: "priority=" + p})
			return
		}
		body["priority"] = n
	}
	var created orderView
	if err := c.call(r, sess, http.MethodPost, "/workorders", body, &created); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/devices/"+url.PathEscape(dev.ID)+"?created="+url.QueryEscape(created.ID)+"#orders", http.StatusSeeOther)
}

package console

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"rsc.io/qr"
)

// Device QR labels: every device has a short, stable address /d/{device}
// that opens its page (after sign-in when needed), and each project has a
// printable A4 sheet of labels carrying that address as a QR code with the
// device's name, id and building. The QR codes are made here, on the
// server, so the sheet prints without any script.

type labelsData struct {
	Project projectView
	Labels  []deviceLabel
}

type deviceLabel struct {
	Device   deviceView
	Building string       // the building's name ("" when the device has none)
	URL      string       // the short address the code carries
	QR       template.URL // a data: URL of the code as PNG
}

// baseURL is the console's address as people outside reach it: the
// configured public_url, else the address this request came to.
func (c *Console) baseURL(r *http.Request) string {
	if c.cfg.PublicURL != "" {
		return strings.TrimRight(c.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// DeviceURL is the short address of device id under base.
func DeviceURL(base, id string) string {
	return strings.TrimRight(base, "/") + "/d/" + url.PathEscape(id)
}

func (c *Console) labelsPage(w http.ResponseWriter, r *http.Request, sess *Session) {
	id := r.PathValue("project")
	pe := url.PathEscape(id)
	var d labelsData
	// The project first: one the viewer may not see answers 404 here, as in
	// the API.
	if err := c.get(r, sess, "/projects/"+pe, &d.Project); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	var devs struct {
		Devices []deviceView `json:"devices"`
	}
	if err := c.get(r, sess, "/projects/"+pe+"/devices", &devs); err != nil {
		c.failAPI(w, r, sess, err)
		return
	}
	buildings := map[string]string{}
	for _, b := range d.Project.Buildings {
		buildings[b.ID] = b.Name
	}
	base := c.baseURL(r)
	for _, dev := range devs.Devices {
		u := DeviceURL(base, dev.ID)
		png, err := qrPNG(u)
		if err != nil {
			c.log.Error("console: cannot make a device label", "device", dev.ID, "err", err)
			c.fail(w, r, sess, http.StatusInternalServerError, "labels.qr_failed")
			return
		}
		d.Labels = append(d.Labels, deviceLabel{Device: dev, Building: buildings[dev.Building], URL: u,
			QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))})
	}
	l := c.cats.locale(languageOf(r), c.zone(id))
	c.render(w, r, sess, "labels", &page{L: l, Nav: Nav{Active: id}, Data: d})
}

// qrPNG is text as a QR code image (error correction M: a label survives
// some dirt and scratches), 4 image pixels a module, with the quiet zone.
func qrPNG(text string) ([]byte, error) {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %q as a QR code: %w", text, err)
	}
	code.Scale = 4
	return code.PNG(), nil
}

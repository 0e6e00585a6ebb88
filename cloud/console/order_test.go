package console

import (
	"bytes"
	"encoding/json"
	"image"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// postForm sends a multipart step form with files (name → content).
func (b *browser) postMultipart(path string, fields map[string]string, files map[string][]byte) (int, http.Header, string) {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fw, _ := mw.CreateFormFile("photos", n)
		_, _ = fw.Write(files[n])
	}
	_ = mw.Close()
	req, err := http.NewRequest("POST", b.base+path, &buf)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(out)
}

func greyJPEG(t *testing.T) []byte {
	img := image.NewGray(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var (
	stepRE  = regexp.MustCompile(`<button name="to" value="([a-z_]+)"`)
	thumbRE = regexp.MustCompile(`<img src="(/api/v1/workorders/[^"]+/photos/([0-9a-f]{64})\?size=thumb)"`)
)

func movesOn(body string) []string {
	var out []string
	for _, m := range stepRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// The work-order page: facts, the steps the viewer may take, scan-in by
// the device's QR address, a step with photos (a renamed text file refused
// with the reason), the thumbnail in the history, a stale step's 409, and
// "not found" for technicians the order is not assigned to, for the page
// and the photo alike.
func TestOrderPage(t *testing.T) {
	ts := newOrderServer(t)
	pm := newBrowser(t, ts.URL)
	pm.signIn("pm-garden", "demo-pw-pm-garden")
	tok := pm.csrf("/my")
	code, js := pm.postJSON("/api/v1/workorders", tok, map[string]any{"project": "garden", "device": "garden-pump-1", "title": "漏水 <b>leak</b>", "priority": 2, "sla": "2h"})
	var o orderView
	if code != http.StatusCreated || json.Unmarshal([]byte(js), &o) != nil {
		t.Fatalf("create: %d %s", code, js)
	}
	if code, js := pm.postJSON("/api/v1/workorders/"+o.ID+"/transitions", tok, map[string]any{"to": "assigned", "assignee": "tech-garden-1"}); code != 200 {
		t.Fatalf("assign: %d %s", code, js)
	}
	page := "/workorders/" + o.ID
	tech := newBrowser(t, ts.URL)
	tech.signIn("tech-garden-1", "demo-pw-tech-garden-1")
	code, _, body := tech.do("GET", page, nil)
	if code != 200 {
		t.Fatalf("GET %s: %d", page, code)
	}
	for _, want := range []string{`漏水 &lt;b&gt;leak&lt;/b&gt;`, `href="/devices/garden-pump-1" id="order-device"`, `id="order-location"`, "尚未到场", `data-due="`, `capture="environment"`, `enctype="multipart/form-data"`} {
		if !strings.Contains(body, want) {
			t.Errorf("order page lacks %q", want)
		}
	}
	if strings.Contains(body, "<b>leak</b>") {
		t.Error("title unescaped")
	}
	if got := movesOn(body); !slices.Equal(got, []string{"accepted"}) {
		t.Errorf("technician's steps %v, want [accepted]", got)
	}
	// A link from another site records no arrival.
	code, h, _ := tech.do("GET", "/d/garden-pump-1", nil, "Sec-Fetch-Site", "cross-site")
	if code != http.StatusSeeOther || h.Get("Location") != "/devices/garden-pump-1" {
		t.Errorf("cross-site scan: %d %q", code, h.Get("Location"))
	}
	arrived := func() string {
		var w struct {
			ArrivedAt string `json:"arrived_at"`
		}
		_, _, js := pm.do("GET", "/api/v1/workorders/"+o.ID, nil)
		_ = json.Unmarshal([]byte(js), &w)
		return w.ArrivedAt
	}
	if a := arrived(); a != "" {
		t.Fatalf("arrived_at %q after a cross-site link", a)
	}
	// Scanning the label (the phone's camera opens it: no Sec-Fetch-Site
	// of another site) records the arrival and opens the order.
	for i := 0; i < 2; i++ {
		code, h, _ = tech.do("GET", "/d/garden-pump-1", nil, "Sec-Fetch-Site", "none")
		if code != http.StatusSeeOther || h.Get("Location") != page+"?done=arrived" {
			t.Fatalf("scan %d: %d %q", i+1, code, h.Get("Location"))
		}
	}
	first := arrived()
	if first == "" {
		t.Fatal("no arrival recorded by the scan")
	}
	_, _, body = tech.do("GET", page+"?done=arrived", nil)
	if n := strings.Count(body, `data-action="arrive"`); n != 1 || strings.Contains(body, "尚未到场") || !strings.Contains(body, "已记录到场时间") {
		t.Errorf("after two scans: %d arrive entries (want 1), still 'not arrived' %v", n, strings.Contains(body, "尚未到场"))
	}
	// A step with a renamed text file: refused by content, nothing moves.
	tok = csrfRE.FindStringSubmatch(body)[1]
	code, _, body = tech.postMultipart(page+"/move", map[string]string{"csrf": tok, "to": "accepted", "note": "到场"},
		map[string][]byte{"photo.jpg": []byte("this is a text file, not a photo\n")})
	if code != http.StatusUnsupportedMediaType || !strings.Contains(body, "照片格式不支持") {
		t.Errorf("text file as photo: %d, reason shown %v", code, strings.Contains(body, "照片格式不支持"))
	}
	// The step with a real photo.
	code, h, _ = tech.postMultipart(page+"/move", map[string]string{"csrf": tok, "to": "accepted", "note": "到场 <i>note</i>"},
		map[string][]byte{"IMG_0001.jpg": greyJPEG(t)})
	if code != http.StatusSeeOther || h.Get("Location") != page+"?done=moved" {
		t.Fatalf("step with a photo: %d %q", code, h.Get("Location"))
	}
	_, _, body = tech.do("GET", page+"?done=moved", nil)
	m := thumbRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no thumbnail in the history after the step with a photo")
	}
	if !strings.Contains(body, "到场 &lt;i&gt;note&lt;/i&gt;") {
		t.Error("step note missing or unescaped")
	}
	if got := movesOn(body); !slices.Equal(got, []string{"in_progress"}) {
		t.Errorf("after accepting, steps %v, want [in_progress]", got)
	}
	thumb, full := m[1], strings.TrimSuffix(m[1], "?size=thumb")
	for _, u := range []string{thumb, full} {
		code, h, img := tech.do("GET", u, nil)
		if _, err := jpeg.DecodeConfig(strings.NewReader(img)); code != 200 || h.Get("Content-Type") != "image/jpeg" || h.Get("X-Content-Type-Options") != "nosniff" || err != nil {
			t.Errorf("GET %s: %d %q %v", u, code, h.Get("Content-Type"), err)
		}
	}
	// A stale step: 409 naming what is allowed now.
	code, _, body = tech.postMultipart(page+"/move", map[string]string{"csrf": tok, "to": "accepted"}, nil)
	if code != http.StatusConflict || !strings.Contains(body, "in_progress") {
		t.Errorf("accepting twice: %d, allowed named %v", code, strings.Contains(body, "in_progress"))
	}
	// The manager may cancel (not accept or start: the assignee's steps).
	if _, _, body = pm.do("GET", page, nil); !slices.Equal(movesOn(body), []string{"cancelled"}) {
		t.Errorf("manager's steps on an accepted order: %v, want [cancelled]", movesOn(body))
	}
	// Technicians it is not assigned to: not found, page and photo alike.
	for _, who := range []string{"tech-tower-1", "tech-garden-2"} {
		other := newBrowser(t, ts.URL)
		other.signIn(who, "demo-pw-"+who)
		if code, _, _ := other.do("GET", page, nil); code != http.StatusNotFound {
			t.Errorf("%s opens the order page: %d, want 404", who, code)
		}
		for _, u := range []string{thumb, full} {
			if code, _, _ := other.do("GET", u, nil); code != http.StatusNotFound {
				t.Errorf("%s GET %s: %d, want 404", who, u, code)
			}
		}
		if code, h, _ := other.do("GET", "/d/garden-pump-1", nil); code != http.StatusSeeOther || strings.HasPrefix(h.Get("Location"), "/workorders/") {
			t.Errorf("%s scans the label: %d %q", who, code, h.Get("Location"))
		}
	}
	if a := arrived(); a != first {
		t.Errorf("arrived_at changed from %q to %q", first, a)
	}
}

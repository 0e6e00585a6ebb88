package console

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A resident attaches a photo on the request form: the request is filed
// with it, and the project's manager sees its thumbnail in the work
// order's history. A text file named like a picture is refused in the
// resident's language, and the form comes back with the text typed.
func TestResidentRequestWithPhoto(t *testing.T) {
	ts := newOrderServer(t)
	pm := newBrowser(t, ts.URL)
	pm.signIn("pm-garden", "demo-pw-pm-garden")
	_, _, js := pm.do("GET", "/api/v1/projects/garden/resident-link", nil)
	var link struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(js), &link); err != nil || link.Token == "" {
		t.Fatalf("garden's link: %v %s", err, js)
	}
	form := "/r/" + link.Token
	res := newBrowser(t, ts.URL)
	_, _, page := res.do("GET", form, nil)
	for _, want := range []string{`enctype="multipart/form-data"`, `type="file" name="photos" id="photos" accept="image/*" multiple`} {
		if !strings.Contains(page, want) {
			t.Errorf("the request form lacks %q", want)
		}
	}
	fields := map[string]string{"csrf": res.csrf(form), "category": "pump", "location": "3 号楼 <b>泵房</b>", "description": "地上有水 water on the floor", "phone": "13812345678"}

	code, _, body := res.postMultipart(form, fields, map[string][]byte{"leak.jpg": []byte("only text, not a picture\n")})
	if code != http.StatusUnsupportedMediaType {
		t.Fatalf("a text file as a photo: %d, want 415", code)
	}
	for _, want := range []string{"照片格式不支持", `value="3 号楼 &lt;b&gt;泵房&lt;/b&gt;"`, "地上有水 water on the floor", `id="request-photos-again"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the refused form lacks %q", want)
		}
	}

	code, h, _ := res.postMultipart(form, fields, map[string][]byte{"IMG_0001.JPG": greyJPEG(t)})
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/t/") {
		t.Fatalf("request with a photo: %d %q, want 303 to the tracking page", code, h.Get("Location"))
	}
	// The tracking page shows the resident's own photo through the token.
	track := h.Get("Location")
	_, _, page = res.do("GET", track, nil)
	tok := strings.TrimPrefix(strings.SplitN(track, "?", 2)[0], "/t/")
	if !strings.Contains(page, `id="track-photos"`) || !strings.Contains(page, `src="/api/v1/public/track/`+tok+`/photos/`) {
		t.Errorf("the tracking page does not show the resident's photo")
	}
	_, _, js = pm.do("GET", "/api/v1/workorders?project=garden", nil)
	var list struct {
		Orders []orderView `json:"work_orders"`
	}
	if err := json.Unmarshal([]byte(js), &list); err != nil {
		t.Fatalf("orders: %v %s", err, js)
	}
	var id string
	for _, o := range list.Orders {
		if o.Source == "resident" {
			if id != "" {
				t.Fatalf("more than one resident order: the refused form opened one")
			}
			id = o.ID
		}
	}
	if id == "" {
		t.Fatalf("no resident order in %s", js)
	}
	_, _, page = pm.do("GET", "/workorders/"+id, nil)
	if n := strings.Count(page, `/api/v1/workorders/`+id+`/photos/`); n != 2 { // the link and its thumbnail
		t.Fatalf("the order page shows the photo %d times, want a link and a thumbnail", n)
	}
	i := strings.Index(page, `/photos/`)
	url := page[i-len("/api/v1/workorders/"+id) : i+len("/photos/")+64]
	if code, _, _ := pm.do("GET", url+"?size=thumb", nil); code != http.StatusOK {
		t.Fatalf("the manager fetches the thumbnail %s: %d", url, code)
	}
	tower := newBrowser(t, ts.URL)
	tower.signIn("tech-tower-1", "demo-pw-tech-tower-1")
	if code, _, _ := tower.do("GET", url, nil); code != http.StatusNotFound {
		t.Fatalf("tech-tower-1 fetches a garden resident's photo: %d, want 404", code)
	}
}

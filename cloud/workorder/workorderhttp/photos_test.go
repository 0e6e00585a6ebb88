package workorderhttp

import (
	"bytes"
	"encoding/json"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/workorder"
)

// testJPEG is a small grey JPEG of the given shade.
func testJPEG(t testing.TB, shade uint8) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 48, 32))
	for i := range img.Pix {
		img.Pix[i] = shade
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// noisyJPEG is a JPEG of about n bytes or more (noise compresses badly).
func noisyJPEG(t testing.TB, side int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, side, side))
	r := rand.New(rand.NewPCG(3, 4))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (r *apiRig) upload(staff, order string, body []byte) *httptest.ResponseRecorder {
	r.t.Helper()
	req := httptest.NewRequest("POST", "/api/v1/workorders/"+order+"/photos", bytes.NewReader(body))
	req.Header.Set("Content-Type", "image/jpeg") // whatever a client says: the content decides
	req.Header.Set("Authorization", "Bearer "+tokens[staff])
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	return rec
}

// A step's photos through the API: upload checked by content and size,
// attached to a step, served with its type, nosniff and cache headers to
// staff who see the order, and conditional requests answered 304.
func TestPhotosThroughTheAPI(t *testing.T) {
	r := newAPIRig(t)
	r.raiseDemoAlarms()
	w := r.orderOf("garden-pump-1")
	if w.Assignee != "tech-garden-1" {
		t.Fatalf("garden order assigned to %q", w.Assignee)
	}
	code := func(rec *httptest.ResponseRecorder) string {
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		return e.Error.Code + ": " + e.Error.Message
	}
	// The rig's limit is 64 KiB.
	big := noisyJPEG(t, 400)
	if len(big) <= 64<<10 {
		t.Fatalf("BUG: test JPEG is only %d bytes", len(big))
	}
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"text renamed .jpg", []byte("hello, this is not a photo\n"), 415, CodePhotoType},
		{"HEIC", append([]byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), make([]byte, 64)...), 415, CodePhotoHEIC},
		{"over the limit", big, 413, CodePhotoTooLarge},
		{"30 MB", append(testJPEG(t, 1), make([]byte, 30<<20)...), 413, "payload_too_large"},
	} {
		rec := r.upload("tech-garden-1", w.ID, c.body)
		if rec.Code != c.status || !strings.HasPrefix(code(rec), c.code+": ") {
			t.Errorf("%s: %d %s, want %d %s", c.name, rec.Code, code(rec), c.status, c.code)
		}
	}
	rec := r.upload("tech-garden-1", w.ID, testJPEG(t, 90))
	var ph photo.Photo
	r.decode(rec, http.StatusCreated, &ph)
	if ph.Type != photo.TypeJPEG || ph.Width != 48 || ph.Height != 32 || !photo.ValidID(ph.ID) {
		t.Fatalf("uploaded %+v", ph)
	}
	// Not yet on a step: not the order's photo.
	get := func(staff, query, etag string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/api/v1/workorders/"+w.ID+"/photos/"+ph.ID+query, nil)
		req.Header.Set("Authorization", "Bearer "+tokens[staff])
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := httptest.NewRecorder()
		r.h.ServeHTTP(rec, req)
		return rec
	}
	if rec := get("pm-garden", "", ""); rec.Code != 404 {
		t.Errorf("photo on no step: %d, want 404", rec.Code)
	}
	var moved workorder.WorkOrder
	r.decode(r.call("tech-garden-1", "POST", "/api/v1/workorders/"+w.ID+"/transitions",
		workorder.TransitionRequest{To: workorder.StateAccepted, Note: "on my way", Photos: []string{ph.ID}}), 200, &moved)
	if last := moved.History[len(moved.History)-1]; len(last.Photos) != 1 || last.Photos[0] != ph {
		t.Fatalf("step photos %+v", last.Photos)
	}
	rec = r.call("tech-garden-1", "POST", "/api/v1/workorders/"+w.ID+"/transitions",
		workorder.TransitionRequest{To: workorder.StateInProgress, Photos: []string{strings.Repeat("f", 64)}})
	if rec.Code != 400 {
		t.Errorf("step naming an unknown photo: %d, want 400", rec.Code)
	}
	for _, q := range []struct{ query, typ string }{{"", "image/jpeg"}, {"?size=thumb", "image/jpeg"}} {
		rec := get("pm-garden", q.query, "")
		h := rec.Header()
		if rec.Code != 200 || h.Get("Content-Type") != q.typ || h.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.Contains(h.Get("Cache-Control"), "private") || h.Get("ETag") == "" {
			t.Errorf("GET photo%s: %d, headers %v", q.query, rec.Code, h)
		}
		if _, err := jpeg.Decode(rec.Body); err != nil {
			t.Errorf("GET photo%s: not a JPEG: %v", q.query, err)
		}
		if again := get("pm-garden", q.query, h.Get("ETag")); again.Code != http.StatusNotModified {
			t.Errorf("GET photo%s with its ETag: %d, want 304", q.query, again.Code)
		}
	}
	if rec := get("pm-garden", "?size=huge", ""); rec.Code != 400 {
		t.Errorf("bad size: %d", rec.Code)
	}
	// The tower technician gets 404, as for the order.
	if rec := get("tech-tower-1", "", ""); rec.Code != 404 {
		t.Errorf("tower technician: %d, want 404", rec.Code)
	}
}

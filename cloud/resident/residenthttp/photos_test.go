package residenthttp

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"testing"

	"github.com/plantroom/plantroom/cloud/resident"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/cloud/workorder/workorderhttp"
)

// cameraMake is the camera maker the test EXIF carries beside its GPS
// position (31°14'N): neither may survive the photo store.
const cameraMake = "RESIDENT-PHONE-MAKE"

// gpsJPEG is a small JPEG with an APP1 Exif segment (big-endian TIFF):
// IFD0 {Make, GPS IFD pointer}, GPS IFD {latitude ref, latitude}, as a
// phone writes it.
func gpsJPEG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.SetRGBA(x, y, color.RGBA{uint8(4 * x), uint8(5 * y), 90, 255})
		}
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	bo := binary.BigEndian
	var tiff bytes.Buffer
	tiff.WriteString("MM\x00\x2a")
	_ = binary.Write(&tiff, bo, uint32(8))
	mk := cameraMake + "\x00"
	// IFD0 at 8: 2 entries (2+24+4 = 30 bytes) → its data from 38.
	gpsIFD := uint32(38 + len(mk))
	ifd := func(entries [][4]uint32) {
		_ = binary.Write(&tiff, bo, uint16(len(entries)))
		for _, e := range entries {
			_ = binary.Write(&tiff, bo, uint16(e[0]))
			_ = binary.Write(&tiff, bo, uint16(e[1]))
			_ = binary.Write(&tiff, bo, e[2])
			_ = binary.Write(&tiff, bo, e[3])
		}
		_ = binary.Write(&tiff, bo, uint32(0))
	}
	ifd([][4]uint32{{0x010f, 2, uint32(len(mk)), 38}, {0x8825, 4, 1, gpsIFD}})
	tiff.WriteString(mk)
	ifd([][4]uint32{{0x0001, 2, 2, 'N' << 24}, {0x0002, 5, 3, gpsIFD + 30}})
	for _, v := range []uint32{31, 1, 14, 1, 0, 1} {
		_ = binary.Write(&tiff, bo, v)
	}
	seg := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	app1 := []byte{0xff, 0xe1, 0, 0}
	bo.PutUint16(app1[2:], uint16(len(seg)+2))
	src := jb.Bytes()
	out := append([]byte{}, src[:2]...)
	out = append(out, app1...)
	out = append(out, seg...)
	return append(out, src[2:]...)
}

// filePart is a file the form sends: its name and declared type are the
// client's, its bytes what the store judges.
type filePart struct {
	name, typ string
	data      []byte
}

// submitMultipart files a request with photos as a browser's multipart
// form would.
func (r *rig) submitMultipart(link, addr string, sub resident.Submission, files ...filePart) *httptest.ResponseRecorder {
	r.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	js, err := json.Marshal(sub)
	if err != nil {
		r.t.Fatal(err)
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="request"`)
	h.Set("Content-Type", "application/json")
	pw, _ := mw.CreatePart(h)
	_, _ = pw.Write(js)
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="photo"; filename="`+f.name+`"`)
		h.Set("Content-Type", f.typ)
		pw, _ := mw.CreatePart(h)
		_, _ = pw.Write(f.data)
	}
	if err := mw.Close(); err != nil {
		r.t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/public/requests/"+link, &body)
	req.RemoteAddr = addr + ":40000"
	req.Header.Set("Content-Type", mw.FormDataContentType())
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	return rec
}

func (r *rig) residentOrders() []workorder.WorkOrder {
	var out []workorder.WorkOrder
	for _, w := range r.orders() {
		if w.Source == workorder.SourceResident {
			out = append(out, w)
		}
	}
	return out
}

// TestResidentPhotos: a resident's photo goes through the photo store
// (EXIF and GPS removed) onto the opening of the work order, where the
// project's staff see it in the history and fetch it; staff of another
// project cannot, by URL either; a text file named .jpg is refused with
// the photo store's message and opens no order; too many photos are
// refused before anything is stored.
func TestResidentPhotos(t *testing.T) {
	r := newRig(t, resident.Limits{})
	link := r.link("garden")
	sub := resident.Submission{Category: "pump", Location: "3 号楼 地下泵房", Description: "水泵漏水 water on the floor", Phone: "13812345678"}

	// A text file renamed to a picture: refused by content, no order.
	rec := r.submitMultipart(link, "10.1.0.1", sub, filePart{"leak.jpg", "image/jpeg", []byte("this is not a picture, only text\n")})
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	r.decode(rec, http.StatusUnsupportedMediaType, &e)
	if e := e.Error; e.Code != workorderhttp.CodePhotoType || !bytes.Contains([]byte(e.Message), []byte("unsupported photo type")) {
		t.Fatalf("renamed text file: code %q message %q, want %q and the store's message", e.Code, e.Message, workorderhttp.CodePhotoType)
	}
	if n := len(r.residentOrders()); n != 0 {
		t.Fatalf("a refused photo opened %d orders", n)
	}
	// More photos than allowed.
	pic := gpsJPEG(t)
	four := []filePart{{"a.jpg", "image/jpeg", pic}, {"b.jpg", "image/jpeg", pic}, {"c.jpg", "image/jpeg", pic}, {"d.jpg", "image/jpeg", pic}}
	r.decode(r.submitMultipart(link, "10.1.0.2", sub, four...), http.StatusBadRequest, nil)
	if n := len(r.residentOrders()); n != 0 {
		t.Fatalf("4 photos opened %d orders", n)
	}

	// A JPEG with GPS in its EXIF.
	if !bytes.Contains(pic, []byte(cameraMake)) {
		t.Fatal("the test picture carries no EXIF")
	}
	var got Submitted
	r.decode(r.submitMultipart(link, "10.1.0.3", sub, filePart{"IMG_0001.JPG", "image/jpeg", pic}), http.StatusCreated, &got)
	orders := r.residentOrders()
	if len(orders) != 1 {
		t.Fatalf("%d resident orders, want 1", len(orders))
	}
	var w workorder.WorkOrder
	r.decode(r.call("pm-garden", "10.0.0.1", http.MethodGet, "/api/v1/workorders/"+orders[0].ID, nil), http.StatusOK, &w)
	if len(w.History) == 0 || w.History[0].Action != workorder.ActionOpen || len(w.History[0].Photos) != 1 {
		t.Fatalf("the opening does not carry the photo: %+v", w.History)
	}
	ph := w.History[0].Photos[0]
	if ph.Type != "image/jpeg" || ph.Width != 64 || ph.Height != 48 {
		t.Fatalf("photo %+v, want a 64×48 JPEG", ph)
	}
	url := "/api/v1/workorders/" + w.ID + "/photos/" + ph.ID
	for _, staff := range []string{"pm-garden", w.Assignee, "hq-admin"} {
		rec := r.call(staff, "10.0.0.1", http.MethodGet, url, nil)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/jpeg" {
			t.Fatalf("%s fetches the photo: %d %s", staff, rec.Code, rec.Header().Get("Content-Type"))
		}
		b := rec.Body.Bytes()
		if bytes.Contains(b, []byte(cameraMake)) || bytes.Contains(b, []byte("Exif\x00\x00")) {
			t.Fatalf("%s: the stored photo still carries EXIF", staff)
		}
		if _, err := jpeg.Decode(bytes.NewReader(b)); err != nil {
			t.Fatalf("%s: the stored photo does not decode: %v", staff, err)
		}
		if rec := r.call(staff, "10.0.0.1", http.MethodGet, url+"?size=thumb", nil); rec.Code != http.StatusOK {
			t.Fatalf("%s fetches the thumbnail: %d", staff, rec.Code)
		}
	}
	// Another project's staff: the order and its photo are not there.
	for _, staff := range []string{"tech-tower-1", "pm-tower"} {
		if rec := r.call(staff, "10.0.0.1", http.MethodGet, url, nil); rec.Code != http.StatusNotFound {
			t.Fatalf("%s fetches a garden resident's photo by URL: %d, want 404: %s", staff, rec.Code, rec.Body.String())
		}
	}
	// Through a restart, the history still names the photo.
	r.start()
	r.decode(r.call("pm-garden", "10.0.0.1", http.MethodGet, "/api/v1/workorders/"+w.ID, nil), http.StatusOK, &w)
	if len(w.History) == 0 || len(w.History[0].Photos) != 1 || w.History[0].Photos[0].ID != ph.ID {
		t.Fatalf("after a restart the opening does not carry the photo: %+v", w.History)
	}
	// A JSON request still works without photos.
	r.decode(r.submit(link, "10.1.0.4", sub), http.StatusCreated, nil)

	// The resident sees their own photos through the tracking token, and
	// only those: another resident's photo is not found through it.
	var other Submitted
	img := image.NewGray(image.Rect(0, 0, 40, 30))
	var ob bytes.Buffer
	if err := jpeg.Encode(&ob, img, nil); err != nil {
		t.Fatal(err)
	}
	r.decode(r.submitMultipart(link, "10.1.0.5", sub, filePart{"b.jpg", "image/jpeg", ob.Bytes()}), http.StatusCreated, &other)
	var tr, otr resident.Tracking
	r.decode(r.call("", "10.1.0.3", http.MethodGet, "/api/v1/public/track/"+got.Token, nil), http.StatusOK, &tr)
	r.decode(r.call("", "10.1.0.5", http.MethodGet, "/api/v1/public/track/"+other.Token, nil), http.StatusOK, &otr)
	if len(tr.Photos) != 1 || tr.Photos[0] != ph.ID || len(otr.Photos) != 1 || otr.Photos[0] == ph.ID {
		t.Fatalf("tracked photos %v and %v, want [%s] and another", tr.Photos, otr.Photos, ph.ID)
	}
	own := "/api/v1/public/track/" + got.Token + "/photos/"
	if rec := r.call("", "10.1.0.3", http.MethodGet, own+ph.ID+"?size=thumb", nil); rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/jpeg" {
		t.Fatalf("the resident's own thumbnail: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, u := range []string{own + otr.Photos[0], own + otr.Photos[0] + "?size=thumb", "/api/v1/public/track/" + got.Token + "x/photos/" + ph.ID} {
		if rec := r.call("", "10.1.0.3", http.MethodGet, u, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", u, rec.Code)
		}
	}
}

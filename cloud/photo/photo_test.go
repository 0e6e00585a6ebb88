package photo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testJPEG is a w×h JPEG, white with a red block in the top-left corner.
func testJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{255, 255, 255, 255}
			if x < w/4 && y < h/4 {
				c = color.RGBA{255, 0, 0, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// gpsMarker is the camera maker name written into the test EXIF; the
// GPS latitude is 31°14'N (Shanghai).
const gpsMarker = "PLANTROOM-CAMERA-MAKE"

// withGPSExif inserts after SOI an APP1 Exif segment (big-endian TIFF)
// with IFD0 {Make, Orientation, GPS IFD pointer} and a GPS IFD {lat ref,
// latitude}, as phones write them.
func withGPSExif(t testing.TB, jpg []byte, orientation uint16) []byte {
	t.Helper()
	bo := binary.BigEndian
	var tiff bytes.Buffer
	tiff.WriteString("MM\x00\x2a")
	_ = binary.Write(&tiff, bo, uint32(8))
	// IFD0 at 8: 3 entries (2+36+4 = 42 bytes) → data from 50.
	make_ := gpsMarker + "\x00"
	gpsIFD := uint32(50 + len(make_))
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
	ifd([][4]uint32{{0x010f, 2, uint32(len(make_)), 50}, {0x0112, 3, 1, uint32(orientation) << 16}, {0x8825, 4, 1, gpsIFD}})
	tiff.WriteString(make_)
	// GPS IFD: 2 entries (2+24+4 = 30 bytes), rationals after it.
	rat := gpsIFD + 30
	ifd([][4]uint32{{0x0001, 2, 2, 'N' << 24}, {0x0002, 5, 3, rat}})
	for _, v := range []uint32{31, 1, 14, 1, 0, 1} {
		_ = binary.Write(&tiff, bo, v)
	}
	seg := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	app1 := []byte{0xff, 0xe1, 0, 0}
	bo.PutUint16(app1[2:], uint16(len(seg)+2))
	out := append([]byte{}, jpg[:2]...)
	out = append(out, app1...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// segments lists the JPEG markers before the image data.
func segments(data []byte) []byte {
	var out []byte
	for i := 2; i+4 <= len(data) && data[i] == 0xff; {
		m := data[i+1]
		out = append(out, m)
		if m == 0xda {
			break
		}
		i += 2 + int(binary.BigEndian.Uint16(data[i+2:]))
	}
	return out
}

func TestGPSExifIsRemovedAndPictureTurnedUpright(t *testing.T) {
	src := withGPSExif(t, testJPEG(t, 64, 32), 6)
	if jpegOrientation(src) != 6 || !bytes.Contains(src, []byte(gpsMarker)) || !bytes.Contains(segments(src), []byte{0xe1}) {
		t.Fatalf("BUG: the test picture carries no EXIF: segments %x", segments(src))
	}
	full, thumb, ph, err := Prepare(src)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"picture": full, "thumbnail": thumb} {
		for _, m := range segments(b) {
			if m >= 0xe0 && m <= 0xef || m == 0xfe {
				t.Errorf("%s keeps segment %#x (application data or comment): %x", name, m, segments(b))
			}
		}
		if bytes.Contains(b, []byte("Exif")) || bytes.Contains(b, []byte(gpsMarker)) {
			t.Errorf("%s still carries the EXIF block", name)
		}
	}
	// Orientation 6: stored 64×32, seen 32×64; the red top-left corner of
	// the stored picture is the top-right corner of the upright one.
	img, err := jpeg.Decode(bytes.NewReader(full))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 32 || b.Dy() != 64 || ph.Width != 32 || ph.Height != 64 {
		t.Fatalf("upright picture is %v (described %d×%d), want 32×64", b, ph.Width, ph.Height)
	}
	red := func(x, y int) bool { r, g, _, _ := img.At(x, y).RGBA(); return r > 0xc000 && g < 0x4000 }
	if !red(28, 3) || red(3, 3) || red(28, 60) {
		t.Errorf("picture not turned clockwise: red at top-right %v, top-left %v, bottom-right %v", red(28, 3), red(3, 3), red(28, 60))
	}
	if ph.Type != TypeJPEG || ph.Bytes != int64(len(full)) || !ValidID(ph.ID) {
		t.Errorf("description %+v", ph)
	}
}

func TestEveryOrientation(t *testing.T) {
	// Where the red corner block ends up, seen upright: (right, bottom).
	want := map[uint16][2]bool{1: {false, false}, 2: {true, false}, 3: {true, true}, 4: {false, true},
		5: {false, false}, 6: {true, false}, 7: {true, true}, 8: {false, true}}
	for o, w := range want {
		full, _, _, err := Prepare(withGPSExif(t, testJPEG(t, 64, 32), o))
		if err != nil {
			t.Fatal(err)
		}
		img, _ := jpeg.Decode(bytes.NewReader(full))
		b := img.Bounds()
		x, y := 3, 3
		if w[0] {
			x = b.Dx() - 4
		}
		if w[1] {
			y = b.Dy() - 4
		}
		if r, g, _, _ := img.At(x, y).RGBA(); r < 0xc000 || g > 0x4000 {
			t.Errorf("orientation %d: no red at (%d,%d) of %v", o, x, y, b)
		}
		if rot := o >= 5; rot != (b.Dx() == 32) {
			t.Errorf("orientation %d: size %v", o, b)
		}
	}
}

// pngChunk appends a PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	out = append(out, typ...)
	out = append(out, data...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}

func testPNG(t testing.TB) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 40, 20))
	for i := range img.Pix {
		img.Pix[i] = 0x80
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPNGMetadataRemoved(t *testing.T) {
	src := testPNG(t)
	// After IHDR (8 signature + 25 bytes): a text chunk and an eXIf chunk.
	meta := append(pngChunk("tEXt", []byte("Location\x0031.23N 121.47E")), pngChunk("eXIf", []byte("MM\x00\x2a"+gpsMarker))...)
	src = append(append(append([]byte{}, src[:33]...), meta...), src[33:]...)
	if _, err := png.Decode(bytes.NewReader(src)); err != nil {
		t.Fatalf("BUG: test PNG does not decode: %v", err)
	}
	full, thumb, ph, err := Prepare(src)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(full, []byte("tEXt")) || bytes.Contains(full, []byte("eXIf")) || bytes.Contains(full, []byte(gpsMarker)) {
		t.Error("PNG keeps its text or EXIF chunk")
	}
	if ph.Type != TypePNG || ph.Width != 40 || ph.Height != 20 {
		t.Errorf("description %+v", ph)
	}
	if _, err := jpeg.Decode(bytes.NewReader(thumb)); err != nil {
		t.Errorf("thumbnail of a PNG is not a JPEG: %v", err)
	}
}

func TestRefused(t *testing.T) {
	bomb := testPNG(t)
	ihdr := append([]byte{}, bomb[16:29]...) // IHDR data
	binary.BigEndian.PutUint32(ihdr[0:], 20000)
	binary.BigEndian.PutUint32(ihdr[4:], 20000)
	bomb = append(append(append([]byte{}, bomb[:8]...), pngChunk("IHDR", ihdr)...), bomb[33:]...)
	heic := append([]byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), make([]byte, 100)...)
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"text file renamed .jpg", []byte("name,phone\nZhang San,13800000000\n"), ErrUnsupported},
		{"HEIC", heic, ErrHEIC},
		{"truncated JPEG", testJPEG(t, 64, 64)[:200], ErrUnsupported},
		{"20000×20000 PNG", bomb, ErrTooLarge},
		{"empty", nil, ErrUnsupported},
	} {
		_, _, _, err := Prepare(c.data)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if !errors.Is(ErrHEIC, ErrUnsupported) || !strings.Contains(ErrHEIC.Error(), "JPEG") {
		t.Errorf("ErrHEIC = %v", ErrHEIC)
	}
}

func TestSaveOpenStat(t *testing.T) {
	dir := t.TempDir()
	p := New(Dir(dir), 1<<20)
	ctx := context.Background()
	src := withGPSExif(t, testJPEG(t, 800, 600), 1)
	ph, err := p.Save(ctx, bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Save(ctx, bytes.NewReader(src))
	if err != nil || again != ph {
		t.Fatalf("second save: %+v, %v; want %+v", again, err, ph)
	}
	stored, err := os.ReadFile(filepath.Join(dir, ph.ID[:2], ph.ID))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(gpsMarker)) {
		t.Error("stored picture keeps its EXIF")
	}
	rc, typ, err := p.Open(ctx, ph.ID, Full)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if typ != TypeJPEG || !bytes.Equal(got, stored) {
		t.Errorf("Open: type %q, %d bytes, want image/jpeg and the stored %d", typ, len(got), len(stored))
	}
	rc, typ, err = p.Open(ctx, ph.ID, Thumb)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := jpeg.DecodeConfig(rc)
	rc.Close()
	if err != nil || typ != TypeJPEG || cfg.Width != ThumbSize || cfg.Height != ThumbSize*600/800 {
		t.Errorf("thumbnail: %q %dx%d %v, want %d wide", typ, cfg.Width, cfg.Height, err, ThumbSize)
	}
	st, err := p.Stat(ctx, ph.ID)
	if err != nil || st != ph {
		t.Errorf("Stat = %+v, %v; want %+v", st, err, ph)
	}
	for _, id := range []string{"../../etc/passwd", strings.Repeat("0", 64), strings.ToUpper(ph.ID), ""} {
		if _, _, err := p.Open(ctx, id, Full); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%q) = %v, want ErrNotFound", id, err)
		}
	}
	// Over the limit: refused after reading at most limit+1 bytes.
	big := io.MultiReader(bytes.NewReader(src), &endless{})
	if _, err := p.Save(ctx, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("30 MB upload: %v, want ErrTooLarge", err)
	}
	if _, err := New(Dir(dir), 10<<20).Save(ctx, io.LimitReader(&endless{}, 30<<20)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("30 MB upload, 10 MB limit: %v, want ErrTooLarge", err)
	}
}

type endless struct{}

func (endless) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 0xab
	}
	return len(b), nil
}

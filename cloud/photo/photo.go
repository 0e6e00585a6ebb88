// Package photo keeps the photos staff (and residents) attach to work
// orders: it checks an upload by its content (JPEG or PNG; HEIC and
// everything else refused), bounds its size and pixel count, removes every
// piece of metadata (EXIF with its GPS position, XMP, comments) by decoding
// and re-encoding the picture, turns it upright first (EXIF orientation),
// makes a thumbnail, and stores both content-addressed through a Store.
//
// The API is small on purpose:
//
//	p := photo.New(store, maxBytes)     // store: photo.Dir(path) or another Store
//	ph, err := p.Save(ctx, body)        // ph.ID is the SHA-256 of the stored picture
//	rc, typ, err := p.Open(ctx, id, photo.Thumb)  // or photo.Full
//	ph, err := p.Stat(ctx, id)
//
// Who may see a photo is not this package's business: its callers ask
// package access (kind photo) for the record the photo belongs to.
package photo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"

	"golang.org/x/image/draw"
)

// Content types of stored pictures.
const (
	TypeJPEG = "image/jpeg"
	TypePNG  = "image/png"
)

// Limits.
const (
	// DefaultMaxBytes is the default upload limit (10 MiB).
	DefaultMaxBytes = 10 << 20
	// MaxPixels bounds the decoded size: a small file may claim a huge
	// picture (a decompression bomb); 64 MP is more than phone cameras take.
	MaxPixels = 64 << 20
	// ThumbSize is the longer side of a thumbnail in pixels.
	ThumbSize = 320
	// jpegQuality is the quality pictures are re-encoded at.
	jpegQuality = 85
)

// Errors. Save's errors wrap one of the first three; messages name the
// offending value.
var (
	ErrTooLarge    = errors.New("photo too large")
	ErrUnsupported = errors.New("unsupported photo type")
	// ErrHEIC wraps ErrUnsupported: no well-kept pure-Go HEIC decoder exists,
	// so HEIC (iPhone "High Efficiency") pictures are refused with a hint.
	ErrHEIC     = fmt.Errorf("HEIC photos are not accepted (set the camera to \"Most Compatible\" or share the photo as JPEG): %w", ErrUnsupported)
	ErrNotFound = errors.New("photo not found")
)

// Photo describes a stored picture. It is what a work-order event records.
type Photo struct {
	ID     string `json:"id"`   // SHA-256 (hex) of the stored picture
	Type   string `json:"type"` // TypeJPEG or TypePNG
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int64  `json:"bytes"` // size of the stored picture
}

// Size selects the full picture or its thumbnail.
type Size int

// Sizes.
const (
	Full Size = iota
	Thumb
)

// Photos validates, cleans and stores pictures. It is safe for concurrent
// use.
type Photos struct {
	store    Store
	maxBytes int64
}

// New returns photos kept in store, refusing uploads over maxBytes (0:
// DefaultMaxBytes).
func New(store Store, maxBytes int64) *Photos {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Photos{store: store, maxBytes: maxBytes}
}

// MaxBytes is the upload limit.
func (p *Photos) MaxBytes() int64 { return p.maxBytes }

// Save reads an upload (at most MaxBytes), checks and cleans it, and stores
// the picture and its thumbnail. Saving the same picture twice stores it
// once and returns the same Photo.
func (p *Photos) Save(ctx context.Context, r io.Reader) (Photo, error) {
	data, err := io.ReadAll(io.LimitReader(r, p.maxBytes+1))
	if err != nil {
		return Photo{}, fmt.Errorf("cannot read photo: %w", err)
	}
	if int64(len(data)) > p.maxBytes {
		return Photo{}, fmt.Errorf("cannot accept photo: over the limit of %d bytes: %w", p.maxBytes, ErrTooLarge)
	}
	full, thumb, ph, err := Prepare(data)
	if err != nil {
		return Photo{}, err
	}
	// The thumbnail first: a picture is visible once its full key exists.
	if err := p.store.Put(ctx, thumbKey(ph.ID), thumb); err != nil {
		return Photo{}, fmt.Errorf("cannot store thumbnail of photo %s: %w", ph.ID, err)
	}
	if err := p.store.Put(ctx, ph.ID, full); err != nil {
		return Photo{}, fmt.Errorf("cannot store photo %s: %w", ph.ID, err)
	}
	return ph, nil
}

// Open returns a stored picture (or its thumbnail, always JPEG) and its
// content type. An unknown or malformed id is ErrNotFound.
func (p *Photos) Open(ctx context.Context, id string, size Size) (io.ReadCloser, string, error) {
	if !ValidID(id) {
		return nil, "", fmt.Errorf("cannot open photo %q: %w", id, ErrNotFound)
	}
	key := id
	if size == Thumb {
		key = thumbKey(id)
	}
	rc, err := p.store.Open(ctx, key)
	if err != nil {
		return nil, "", err
	}
	typ := TypeJPEG
	if size == Full {
		head := make([]byte, 512)
		n, _ := io.ReadFull(rc, head)
		typ = http.DetectContentType(head[:n])
		rc = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head[:n]), rc), rc}
	}
	return rc, typ, nil
}

// Stat describes a stored picture.
func (p *Photos) Stat(ctx context.Context, id string) (Photo, error) {
	rc, typ, err := p.Open(ctx, id, Full)
	if err != nil {
		return Photo{}, err
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	cfg, _, err := image.DecodeConfig(cr)
	if err != nil {
		return Photo{}, fmt.Errorf("cannot read stored photo %s: %w", id, err)
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return Photo{}, fmt.Errorf("cannot read stored photo %s: %w", id, err)
	}
	return Photo{ID: id, Type: typ, Width: cfg.Width, Height: cfg.Height, Bytes: cr.n}, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// ValidID reports whether id has the form of a photo id (64 hex digits).
func ValidID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func thumbKey(id string) string { return id + ".thumb" }

// Prepare checks data by its content and returns the cleaned picture (same
// format, re-encoded: no metadata survives), its JPEG thumbnail and its
// description. It does no I/O.
func Prepare(data []byte) (full, thumb []byte, ph Photo, err error) {
	var typ string
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
		typ = TypeJPEG
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		typ = TypePNG
	case isHEIC(data):
		return nil, nil, Photo{}, fmt.Errorf("cannot accept photo: %w", ErrHEIC)
	default:
		return nil, nil, Photo{}, fmt.Errorf("cannot accept photo: content is %s, not a JPEG or PNG image: %w", http.DetectContentType(data), ErrUnsupported)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, nil, Photo{}, fmt.Errorf("cannot accept photo: damaged %s: %v: %w", typ, err, ErrUnsupported)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, nil, Photo{}, fmt.Errorf("cannot accept photo: %d×%d pixels, over the limit of %d: %w", cfg.Width, cfg.Height, MaxPixels, ErrTooLarge)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, nil, Photo{}, fmt.Errorf("cannot accept photo: damaged %s: %v: %w", typ, err, ErrUnsupported)
	}
	if typ == TypeJPEG {
		img = upright(img, jpegOrientation(data))
	}
	var buf bytes.Buffer
	if typ == TypeJPEG {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: jpegQuality})
	} else {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img)
	}
	if err != nil {
		return nil, nil, Photo{}, fmt.Errorf("cannot encode photo: %w", err)
	}
	full = buf.Bytes()
	if thumb, err = thumbnail(img); err != nil {
		return nil, nil, Photo{}, err
	}
	sum := sha256.Sum256(full)
	b := img.Bounds()
	return full, thumb, Photo{ID: hex.EncodeToString(sum[:]), Type: typ, Width: b.Dx(), Height: b.Dy(), Bytes: int64(len(full))}, nil
}

// isHEIC reports an ISO-BMFF file of a HEIF brand.
func isHEIC(data []byte) bool {
	if len(data) < 12 || string(data[4:8]) != "ftyp" {
		return false
	}
	switch string(data[8:12]) {
	case "heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1", "avif":
		return true
	}
	return false
}

// thumbnail scales img so its longer side is at most ThumbSize, on white
// (a transparent PNG), as JPEG.
func thumbnail(img image.Image) ([]byte, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w >= h && w > ThumbSize {
		w, h = ThumbSize, max(1, h*ThumbSize/w)
	} else if h > w && h > ThumbSize {
		w, h = max(1, w*ThumbSize/h), ThumbSize
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	// BiLinear widens its kernel when shrinking, so a large reduction
	// averages every source pixel instead of sampling a few (no aliasing).
	draw.BiLinear.Scale(dst, dst.Bounds(), img, b, draw.Over, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 80}); err != nil {
		return nil, fmt.Errorf("cannot encode thumbnail: %w", err)
	}
	return buf.Bytes(), nil
}

package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// The console's static files: its own stylesheet and script, and the
// vendored libraries (assets/vendor, refreshed by scripts/vendor-assets.sh).
//
//go:embed assets
var assetFiles embed.FS

// asset is one static file, served under a content-hashed name with a long
// cache lifetime: a new build changes the name, never the content behind it.
type asset struct {
	name        string // hashed name: "console.3f2a9c1b0d.js"
	contentType string
	raw, gz     []byte
}

// assetSet maps logical names ("console.js", "vendor/echarts/echarts.common.min.js")
// to their hashed URL path, and hashed names to the files.
type assetSet struct {
	byLogical map[string]*asset
	byHashed  map[string]*asset
}

// AssetPrefix is the URL path under which static files are served.
const AssetPrefix = "/assets/"

func loadAssets() (*assetSet, error) {
	s := &assetSet{byLogical: map[string]*asset{}, byHashed: map[string]*asset{}}
	err := fs.WalkDir(assetFiles, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := path.Ext(p)
		if ext != ".js" && ext != ".css" && ext != ".svg" && ext != ".png" {
			return nil // licences and version files are kept beside the code, not served
		}
		raw, err := assetFiles.ReadFile(p)
		if err != nil {
			return fmt.Errorf("cannot read asset %q: %w", p, err)
		}
		sum := sha256.Sum256(raw)
		logical := strings.TrimPrefix(p, "assets/")
		base := strings.TrimSuffix(path.Base(logical), ext)
		a := &asset{
			name:        base + "." + hex.EncodeToString(sum[:5]) + ext,
			contentType: mime.TypeByExtension(ext),
			raw:         raw,
		}
		if ext != ".png" {
			var b bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
			zw.Write(raw)
			zw.Close()
			a.gz = b.Bytes()
		}
		if _, dup := s.byHashed[a.name]; dup {
			return fmt.Errorf("BUG: two assets hash to the name %q", a.name)
		}
		s.byLogical[logical] = a
		s.byHashed[a.name] = a
		return nil
	})
	return s, err
}

// URL is the hashed URL of a logical asset name; it panics with "BUG:" on
// an unknown name, which a template test catches.
func (s *assetSet) URL(logical string) string {
	a, ok := s.byLogical[logical]
	if !ok {
		panic("BUG: unknown console asset " + logical)
	}
	return AssetPrefix + a.name
}

// serve answers GET /assets/<hashed name>, gzip-compressed when the client
// accepts it, cacheable for a year.
func (s *assetSet) serve(w http.ResponseWriter, r *http.Request) {
	a, ok := s.byHashed[strings.TrimPrefix(r.URL.Path, AssetPrefix)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	body := a.raw
	if a.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

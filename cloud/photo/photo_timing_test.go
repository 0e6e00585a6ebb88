package photo

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// phoneJPEG is a 4000×3000 (12 MP, a phone camera's) JPEG of about 4 MB:
// a gradient with sensor-like noise, with GPS EXIF.
func phoneJPEG(b testing.TB) []byte {
	const w, h = 4000, 3000
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	r := rand.New(rand.NewPCG(1, 2))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Y[y*img.YStride+x] = uint8(40 + (x+y)*150/(w+h) + r.IntN(24))
		}
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = 120+uint8(r.IntN(8)), 130+uint8(r.IntN(8))
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 92}); err != nil {
		b.Fatal(err)
	}
	return withGPSExif(b, buf.Bytes(), 6)
}

// BenchmarkPhotoUpload: a 4 MB phone JPEG through Save (content check,
// decode, turn upright, strip, re-encode, thumbnail, both stored in a Dir):
// p95 and p50 per upload; the baseline is decoding the same JPEG alone, the
// least any cleaning must do.
func BenchmarkPhotoUpload(b *testing.B) {
	src := phoneJPEG(b)
	base := b.TempDir()
	ctx := context.Background()
	var took, dec []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := jpeg.Decode(bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		// A fresh store each time: a store keeps a known picture once.
		p := New(Dir(filepath.Join(base, strconv.Itoa(i))), DefaultMaxBytes)
		if _, err := p.Save(ctx, bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
		took, dec = append(took, time.Since(t1)), append(dec, t1.Sub(t0))
	}
	b.StopTimer()
	q := func(d []time.Duration, f float64) float64 {
		slices.Sort(d)
		return float64(d[min(len(d)-1, int(f*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(src))/1e6, "MB")
	b.ReportMetric(q(took, 0.95), "p95-ms")
	b.ReportMetric(q(took, 0.50), "p50-ms")
	b.ReportMetric(q(dec, 0.50), "decode-ms")
}

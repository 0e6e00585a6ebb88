package workorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/plantroom/plantroom/cloud/photo"
)

// PhotoStat describes stored photos (*photo.Photos is one).
type PhotoStat interface {
	Stat(ctx context.Context, id string) (photo.Photo, error)
}

// MaxPhotos is the most photos one step may carry.
const MaxPhotos = 10

// photosOf looks up the photos a step names: each must be stored.
func (d *Desk) photosOf(ctx context.Context, order string, ids []string) ([]photo.Photo, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if d.cfg.Photos == nil {
		return nil, fmt.Errorf("cannot attach photos to work order %q: this server keeps no photos: %w", order, ErrInvalid)
	}
	if len(ids) > MaxPhotos {
		return nil, fmt.Errorf("cannot attach %d photos to work order %q: at most %d a step: %w", len(ids), order, MaxPhotos, ErrInvalid)
	}
	out := make([]photo.Photo, 0, len(ids))
	for _, id := range ids {
		ph, err := d.cfg.Photos.Stat(ctx, id)
		if errors.Is(err, photo.ErrNotFound) {
			return nil, fmt.Errorf("cannot attach photo %q to work order %q: no such photo (upload it first): %w", id, order, ErrInvalid)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot attach photo %q to work order %q: %w", id, order, err)
		}
		out = append(out, ph)
	}
	return out, nil
}

// HasPhoto reports whether a step of the order carried photo id: the
// photo belongs to the order (who may see it follows from the order).
func (w *WorkOrder) HasPhoto(id string) bool {
	for _, ev := range w.History {
		for _, p := range ev.Photos {
			if p.ID == id {
				return true
			}
		}
	}
	return false
}

// The event log's photo column holds the step's photo reference as given
// (TransitionRequest.Photo) when no stored photo came with the step, and
// otherwise this JSON object, which starts with "{" (no URL or key does):
// the photos travel with the step's reference, in the column that already
// holds it, and old rows read as before.
type photoColumn struct {
	Ref    string        `json:"ref,omitempty"`
	Photos []photo.Photo `json:"photos"`
}

func encodePhotos(ref string, photos []photo.Photo) string {
	if len(photos) == 0 {
		return ref
	}
	b, err := json.Marshal(photoColumn{Ref: ref, Photos: photos})
	if err != nil {
		panic("BUG: cannot encode photos: " + err.Error())
	}
	return string(b)
}

func decodePhotos(col string) (string, []photo.Photo) {
	if !strings.HasPrefix(col, "{") {
		return col, nil
	}
	var pc photoColumn
	if err := json.Unmarshal([]byte(col), &pc); err != nil {
		return col, nil
	}
	return pc.Ref, pc.Photos
}

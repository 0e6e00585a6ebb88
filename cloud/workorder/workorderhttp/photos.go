package workorderhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/photo"
)

// Error codes of photo uploads.
const (
	CodePhotoTooLarge = "photo_too_large" // 413: over photos.max_bytes or 64 MP
	CodePhotoType     = "photo_type"      // 415: not a JPEG or PNG by content
	CodePhotoHEIC     = "photo_heic"      // 415: HEIC, which is not accepted
)

// photoRoutes: upload a photo for a step of an order, and read one that a
// step of the order carried.
//
//	POST /workorders/:workorder/photos                  body: the picture; 201 photo.Photo
//	GET  /workorders/:workorder/photos/:photo?size=thumb the picture (or its thumbnail)
func (h *handlers) photoRoutes(order api.Scope) []api.Route {
	pic := api.Resource(access.KindPhoto, "workorder", func(ctx context.Context, id string) (access.Resource, error) {
		r, err := h.owner(ctx, id)
		r.Kind = access.KindPhoto
		return r, err
	})
	return []api.Route{
		// Uploading is part of taking a step: whoever may move the order.
		// Save reads at most photos.max_bytes+1 and answers photo_too_large;
		// a body declared larger than that and 1 MiB more is refused before
		// (payload_too_large).
		{Method: http.MethodPost, Path: "/workorders/:workorder/photos", Scope: order.Do(access.Transition), Handler: h.uploadPhoto,
			BodyLimit: h.maxPhoto() + 1<<20},
		{Method: http.MethodGet, Path: "/workorders/:workorder/photos/:photo", Scope: pic, Handler: h.photo},
	}
}

// maxPhoto is the photo upload limit; without photos (the routes of a
// replica that forwards them to the owner), the default.
func (h *handlers) maxPhoto() int64 {
	if h.photos == nil {
		return photo.DefaultMaxBytes
	}
	return h.photos.MaxBytes()
}

func (h *handlers) uploadPhoto(c echo.Context) error {
	ph, err := h.photos.Save(c.Request().Context(), c.Request().Body)
	if err != nil {
		return PhotoError(err)
	}
	return c.JSON(http.StatusCreated, ph)
}

// PhotoError maps package photo's refusals to API answers.
func PhotoError(err error) error {
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge, errors.Is(err, photo.ErrTooLarge):
		return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: CodePhotoTooLarge, Message: err.Error()}
	case errors.Is(err, photo.ErrHEIC):
		return &api.Error{Status: http.StatusUnsupportedMediaType, Code: CodePhotoHEIC, Message: err.Error()}
	case errors.Is(err, photo.ErrUnsupported):
		return &api.Error{Status: http.StatusUnsupportedMediaType, Code: CodePhotoType, Message: err.Error()}
	}
	return err
}

// photo serves a picture that a step of the order carried: the order
// decides who sees it (its scope passed), and a photo id the order's
// history does not name is "not found", whatever the store holds.
func (h *handlers) photo(c echo.Context) error {
	id := c.Param("photo")
	w, err := h.d.Get(c.Request().Context(), viewer(c), c.Param("workorder"))
	if err != nil {
		return apiError(c, err)
	}
	notFound := &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("photo %q not found in work order %q", id, w.ID)}
	if !w.HasPhoto(id) {
		return notFound
	}
	return ServePhoto(c, h.photos, id, notFound)
}

// PhotoOpener opens stored photos (*photo.Photos is one).
type PhotoOpener interface {
	Open(ctx context.Context, id string, size photo.Size) (io.ReadCloser, string, error)
}

// ServePhoto answers with stored photo id (?size=thumb: its thumbnail),
// once the caller has decided the viewer may see it; notFound when the
// store has no such photo.
func ServePhoto(c echo.Context, photos PhotoOpener, id string, notFound error) error {
	size, suffix := photo.Full, ""
	switch c.QueryParam("size") {
	case "", "full":
	case "thumb":
		size, suffix = photo.Thumb, ".thumb"
	default:
		return api.BadRequest("invalid size %q: want full or thumb", c.QueryParam("size"))
	}
	etag := `"` + id + suffix + `"`
	hd := c.Response().Header()
	// Content-addressed, so never stale; private, because who may see it
	// depends on the viewer.
	hd.Set("Cache-Control", "private, max-age=31536000, immutable")
	hd.Set("ETag", etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	if c.Request().Header.Get("If-None-Match") == etag {
		return c.NoContent(http.StatusNotModified)
	}
	rc, typ, err := photos.Open(c.Request().Context(), id, size)
	if errors.Is(err, photo.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	hd.Set("Content-Disposition", "inline")
	c.Response().Header().Set(echo.HeaderContentType, typ)
	c.Response().WriteHeader(http.StatusOK)
	_, err = io.Copy(c.Response(), rc)
	return err
}

package app

import (
	"context"
	"sync"
	"time"
)

// cacheRefresher keeps Latest and Presence current from ClickHouse in a
// process without an ingest (an API-only replica).
type cacheRefresher struct {
	app   *App
	every time.Duration

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func (r *cacheRefresher) Start(ctx context.Context) error {
	if err := r.refresh(ctx); err != nil {
		return err
	}
	ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.every)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				err := r.refresh(ctx)
				if err != nil && !failing && ctx.Err() == nil {
					r.app.Log.Warn("cannot refresh latest values from ClickHouse; will retry", "error", err)
				}
				failing = err != nil
			}
		}
	}()
	return nil
}

func (r *cacheRefresher) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	since := time.Now().Add(-r.app.Config.Ingest.LatestLookback.Duration)
	if err := r.app.Latest.Load(ctx, r.app.DB, since); err != nil {
		return err
	}
	return r.app.Presence.Load(ctx, r.app.DB, r.app.Latest)
}

func (r *cacheRefresher) Stop() {
	r.once.Do(func() {
		if r.cancel != nil {
			r.cancel()
		}
		r.wg.Wait()
	})
}

package app

import "github.com/plantroom/plantroom/cloud/store"

type storeBatch struct{ store.ReadingBatch }

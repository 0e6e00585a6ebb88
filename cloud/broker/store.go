package broker

import (
	"strconv"
	"strings"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
)

// storeHook is mochi's bbolt storage hook with one repair: mochi 2.7.9's
// bolt hook does not record an in-flight message's packet id, so on restore
// every queued message of a session gets id 0 and all but one are lost.
// The id is part of the record's key ("IFM_<client>:<id>"), so it is taken
// from there.
type storeHook struct {
	*bolt.Hook
}

// StoredInflightMessages returns the stored in-flight messages with their
// packet ids.
func (h storeHook) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := h.Hook.StoredInflightMessages()
	for i := range msgs {
		if msgs[i].PacketID != 0 {
			continue
		}
		if j := strings.LastIndexByte(msgs[i].ID, ':'); j >= 0 {
			if id, perr := strconv.ParseUint(msgs[i].ID[j+1:], 10, 16); perr == nil {
				msgs[i].PacketID = uint16(id)
			}
		}
	}
	return msgs, err
}

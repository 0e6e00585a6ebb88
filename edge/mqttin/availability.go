package mqttin

import (
	"fmt"
	"strings"

	"github.com/plantroom/plantroom/config"
)

// Template formats (config.MQTTFormat.Format) with an availability topic.
const (
	FormatTasmota = "tasmota"
	FormatShelly  = "shelly_gen2"
)

// AvailabilityTopic is the topic on which a device of the template announces
// whether it is online, or "" when its format has none:
//
//	tasmota      tele/<topic>/LWT   Online / Offline (retained, Offline is the last will)
//	shelly_gen2  <topic>/online     true / false     (retained, false is the last will)
func AvailabilityTopic(t *config.Template, deviceTopic string) string {
	if t == nil || t.MQTT == nil {
		return ""
	}
	switch t.MQTT.Format {
	case FormatTasmota:
		return "tele/" + deviceTopic + "/LWT"
	case FormatShelly:
		return deviceTopic + "/online"
	}
	return ""
}

// ParseAvailability reads an availability payload: "Online" or "true" is
// online, "Offline" or "false" offline (case and surrounding space do not
// matter). Anything else is ErrAvailability.
func ParseAvailability(payload []byte) (online bool, err error) {
	switch strings.ToLower(strings.TrimSpace(string(payload))) {
	case "online", "true":
		return true, nil
	case "offline", "false":
		return false, nil
	}
	return false, fmt.Errorf("%w: %q (want Online, Offline, true or false)", ErrAvailability, truncate(string(payload)))
}

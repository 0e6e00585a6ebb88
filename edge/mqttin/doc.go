// Package mqttin is the edge agent's MQTT device input.
//
// Tasmota and Shelly devices on the plant-room LAN publish JSON or plain
// text messages; mqttin receives them, either from a broker it embeds for
// the LAN or by subscribing to an existing site broker, and maps them to
// protocol.Reading values through the device's template
// (config.Template.MQTT). Availability messages (Tasmota LWT, Shelly
// online) are reported as online/offline state changes.
package mqttin

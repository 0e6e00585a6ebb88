package modbus

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Transports a device can be reached over.
const (
	TransportTCP        = "tcp"        // Modbus TCP (MBAP header)
	TransportRTUOverTCP = "rtuovertcp" // RTU frames with CRC through a serial-to-Ethernet converter
	TransportRTU        = "rtu"        // RTU on a local serial port (RS-485 adapter)
)

// Serial defaults for an "rtu://" address that leaves a parameter out:
// 9600 baud, 8 data bits, no parity, 1 stop bit (9600 8N1), the factory
// setting of most meters and drives.
const (
	DefaultBaudRate = 9600
	DefaultDataBits = 8
	DefaultParity   = "N"
	DefaultStopBits = 1
)

// baudRates are the serial speeds a port can be set to.
var baudRates = []int{300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600}

// DefaultTCPPort is the Modbus TCP port used when a tcp:// address has none.
const DefaultTCPPort = "502"

// Address says where and how a device is reached. Build it with
// ParseAddress.
type Address struct {
	Transport string // TransportTCP, TransportRTUOverTCP or TransportRTU
	// HostPort is "host:port" for tcp and rtuovertcp.
	HostPort string
	// Serial port settings, for rtu only.
	Port     string // e.g. "/dev/ttyUSB0"
	BaudRate int
	DataBits int
	Parity   string // "N", "E" or "O"
	StopBits int
}

// ParseAddress parses a device address:
//
//	tcp://HOST[:PORT]                 Modbus TCP (port 502 by default)
//	rtuovertcp://HOST:PORT            RTU frames over TCP (serial-to-Ethernet converter)
//	rtu:///dev/ttyUSB0?baud=9600&parity=N&data_bits=8&stop_bits=1
//
// Serial parameters default to 9600 8N1; unknown parameters are errors.
func ParseAddress(s string) (Address, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return Address{}, fmt.Errorf("cannot parse device address %q: want tcp://host:port, rtuovertcp://host:port or rtu:///dev/port", s)
	}
	switch u.Scheme {
	case TransportTCP, TransportRTUOverTCP:
		return parseNetAddress(s, u)
	case TransportRTU:
		return parseSerialAddress(s, u)
	default:
		return Address{}, fmt.Errorf("cannot parse device address %q: unknown scheme %q (want tcp, rtuovertcp or rtu)", s, u.Scheme)
	}
}

func parseNetAddress(s string, u *url.URL) (Address, error) {
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return Address{}, fmt.Errorf("cannot parse device address %q: want %s://host:port and nothing else", s, u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return Address{}, fmt.Errorf("cannot parse device address %q: no host", s)
	}
	if port == "" {
		if u.Scheme == TransportRTUOverTCP {
			return Address{}, fmt.Errorf("cannot parse device address %q: an rtuovertcp address needs a port (converters have no standard one)", s)
		}
		if strings.HasSuffix(u.Host, ":") {
			return Address{}, fmt.Errorf("cannot parse device address %q: empty port", s)
		}
		port = DefaultTCPPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Address{}, fmt.Errorf("cannot parse device address %q: port %q is not a number from 1 to 65535", s, port)
	}
	return Address{Transport: u.Scheme, HostPort: net.JoinHostPort(host, port)}, nil
}

func parseSerialAddress(s string, u *url.URL) (Address, error) {
	port := u.Path
	if u.Host != "" { // rtu://COM3 on Windows
		port = u.Host + u.Path
	}
	if port == "" || port == "/" {
		return Address{}, fmt.Errorf("cannot parse device address %q: no serial port (want rtu:///dev/ttyUSB0)", s)
	}
	a := Address{Transport: TransportRTU, Port: port, BaudRate: DefaultBaudRate,
		DataBits: DefaultDataBits, Parity: DefaultParity, StopBits: DefaultStopBits}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Address{}, fmt.Errorf("cannot parse device address %q: %w", s, err)
	}
	num := func(key string, ok func(int) bool, want string) (int, error) {
		v := q.Get(key)
		n, err := strconv.Atoi(v)
		if err != nil || !ok(n) {
			return 0, fmt.Errorf("cannot parse device address %q: %s %q is not %s", s, key, v, want)
		}
		return n, nil
	}
	for _, key := range slices.Sorted(maps.Keys(q)) {
		if vals := q[key]; len(vals) != 1 {
			return Address{}, fmt.Errorf("cannot parse device address %q: %s given %d times", s, key, len(vals))
		}
		switch key {
		case "baud":
			a.BaudRate, err = num(key, func(n int) bool { return slices.Contains(baudRates, n) }, "a standard baud rate (1200 … 921600)")
		case "data_bits":
			a.DataBits, err = num(key, func(n int) bool { return n == 7 || n == 8 }, "7 or 8")
		case "stop_bits":
			a.StopBits, err = num(key, func(n int) bool { return n == 1 || n == 2 }, "1 or 2")
		case "parity":
			a.Parity = strings.ToUpper(q.Get(key))
			if a.Parity != "N" && a.Parity != "E" && a.Parity != "O" {
				err = fmt.Errorf("cannot parse device address %q: parity %q is not N, E or O", s, q.Get(key))
			}
		default:
			err = fmt.Errorf("cannot parse device address %q: unknown parameter %q (want baud, parity, data_bits, stop_bits)", s, key)
		}
		if err != nil {
			return Address{}, err
		}
	}
	return a, nil
}

// String formats the address as ParseAddress reads it, serial parameters
// included.
func (a Address) String() string {
	if a.Transport == TransportRTU {
		return fmt.Sprintf("rtu://%s?baud=%d&parity=%s&data_bits=%d&stop_bits=%d", a.Port, a.BaudRate, a.Parity, a.DataBits, a.StopBits)
	}
	return a.Transport + "://" + a.HostPort
}

// bus names the physical line the address is on: devices with the same bus
// are polled one request at a time. A serial port and an RTU-over-TCP
// converter are buses; a Modbus TCP address is one only for devices marked
// SingleConnection.
func (a Address) bus() string {
	if a.Transport == TransportRTU {
		return "rtu:" + a.Port
	}
	return a.Transport + ":" + a.HostPort
}

// lineSettings is the serial framing in the short form "9600 8N1".
func (a Address) lineSettings() string {
	return fmt.Sprintf("%d %d%s%d", a.BaudRate, a.DataBits, a.Parity, a.StopBits)
}

package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// The server side of RFC 6455, just what GraphQL over WebSocket needs: the
// opening handshake on a hijacked HTTP/1.1 connection, reading masked client
// frames (fragmented or not, with interleaved control frames) and writing
// unmasked server frames. No extensions (permessage-deflate is not
// negotiated: progress messages are a few hundred bytes).

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xA
)

// WebSocket close codes crmhub sends besides closeForbidden and
// closeServiceRestart.
const (
	wsCloseNormal        = 1000
	wsCloseProtocolError = 1002
	wsCloseTooBig        = 1009
	wsCloseNoStatus      = 1005
)

// wsAcceptGUID is the key suffix of the handshake (RFC 6455, section 1.3).
const wsAcceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

var (
	errWSProtocol = errors.New("websocket protocol error")
	errWSTooBig   = errors.New("websocket message too big")
)

// wsHandshakeError is a refused upgrade: the HTTP status and why.
type wsHandshakeError struct {
	status int
	msg    string
}

func (e *wsHandshakeError) Error() string { return e.msg }

// wsCheckUpgrade validates an upgrade request and picks the subprotocol:
// the first of ours, in our order, that the client offers ("" if none).
// originPatterns are path.Match patterns of the Origin's host (or of its
// scheme://host when the pattern has "://"); same-origin requests and
// requests without an Origin (not from a browser) always pass.
func wsCheckUpgrade(r *http.Request, ours, originPatterns []string) (proto string, err error) {
	if r.Method != http.MethodGet {
		return "", &wsHandshakeError{http.StatusMethodNotAllowed, "WebSocket upgrades use GET"}
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return "", &wsHandshakeError{http.StatusUpgradeRequired, "expected a WebSocket upgrade"}
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return "", &wsHandshakeError{http.StatusBadRequest, "unsupported Sec-WebSocket-Version (13 only)"}
	}
	if r.Header.Get("Sec-WebSocket-Key") == "" {
		return "", &wsHandshakeError{http.StatusBadRequest, "missing Sec-WebSocket-Key"}
	}
	if err := wsCheckOrigin(r, originPatterns); err != nil {
		return "", &wsHandshakeError{http.StatusForbidden, err.Error()}
	}
	offered := headerTokens(r.Header, "Sec-WebSocket-Protocol")
	for _, p := range ours {
		for _, o := range offered {
			if strings.EqualFold(p, o) {
				return p, nil
			}
		}
	}
	return "", nil
}

// wsCheckOrigin applies the origin policy of wsCheckUpgrade; it is the one
// coder/websocket applied before, so CRMHUB_ALLOWED_ORIGINS keeps its
// meaning.
func wsCheckOrigin(r *http.Request, patterns []string) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("bad Origin header %q", origin)
	}
	if strings.EqualFold(r.Host, u.Host) {
		return nil
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return nil
		}
	}
	return fmt.Errorf("request Origin %q is not allowed for Host %q", u.Host, r.Host)
}

// wsHijack completes the handshake that wsCheckUpgrade accepted: it takes
// the connection from net/http and writes the 101 response. The returned
// reader holds whatever the client sent after its request (a pipelined
// connection_init), then reads the connection, through a small buffer.
func wsHijack(w http.ResponseWriter, r *http.Request, proto string, readBuffer int) (net.Conn, *bufio.Reader, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response writer cannot be hijacked")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("error hijacking the connection: %w", err)
	}
	var src io.Reader = nc
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		src = io.MultiReader(strings.NewReader(string(early)), nc)
	}
	sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + wsAcceptGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n"
	if proto != "" {
		resp += "Sec-WebSocket-Protocol: " + proto + "\r\n"
	}
	resp += "\r\n"
	if _, err := nc.Write([]byte(resp)); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("error writing the handshake: %w", err)
	}
	return nc, bufio.NewReaderSize(src, readBuffer), nil
}

func headerTokens(h http.Header, key string) []string {
	var out []string
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, t := range headerTokens(h, key) {
		if strings.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// wsReadFrame reads one client frame and unmasks its payload. Client frames
// must be masked; control frames must be whole and at most 125 bytes; a
// payload above limit is refused before it is read.
func wsReadFrame(r *bufio.Reader, limit int64) (fin bool, op byte, payload []byte, err error) {
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return false, 0, nil, err
	}
	fin = head[0]&0x80 != 0
	op = head[0] & 0x0F
	if head[0]&0x70 != 0 || head[1]&0x80 == 0 {
		return false, 0, nil, errWSProtocol // reserved bits, or an unmasked client frame
	}
	n := int64(head[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return false, 0, nil, err
		}
		n = int64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return false, 0, nil, err
		}
		u := binary.BigEndian.Uint64(ext[:])
		if u > 1<<62 {
			return false, 0, nil, errWSTooBig
		}
		n = int64(u)
	}
	if op >= wsOpClose && (!fin || n > 125) {
		return false, 0, nil, errWSProtocol
	}
	if n > limit {
		return false, 0, nil, errWSTooBig
	}
	var mask [4]byte
	if _, err := io.ReadFull(r, mask[:]); err != nil {
		return false, 0, nil, err
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return false, 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return fin, op, payload, nil
}

// wsAppendFrameHeader appends the header of an unmasked, final server frame
// whose payload is n bytes long.
func wsAppendFrameHeader(dst []byte, op byte, n int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case n <= 125:
		return append(dst, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(dst, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
	}
}

// wsAppendFrame appends a whole server frame.
func wsAppendFrame(dst []byte, op byte, payload []byte) []byte {
	return append(wsAppendFrameHeader(dst, op, len(payload)), payload...)
}

// wsClosePayload is the body of a close frame: the code, then the reason
// (cut to fit a control frame).
func wsClosePayload(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

package grpcload

import "google.golang.org/protobuf/encoding/protowire"

type (
	protoNumber = protowire.Number
	protoType   = protowire.Type
)

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

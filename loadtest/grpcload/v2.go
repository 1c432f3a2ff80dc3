package grpcload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The Open Inference Protocol (KServe V2) over gRPC, as MLServer serves it: service
// inference.GRPCInferenceService. The few messages the load client needs are encoded here with
// protowire, by the public field numbers, so the module carries no generated code for them.
const (
	// V2ModelInfer is the full method name of ModelInfer.
	V2ModelInfer = "/inference.GRPCInferenceService/ModelInfer"
	// V2ModelReady is the full method name of ModelReady.
	V2ModelReady = "/inference.GRPCInferenceService/ModelReady"
)

// EncodeV2Infer encodes a ModelInferRequest for model with one FP64 input tensor "input-0" of
// shape [1, len(row)] holding row in fp64_contents.
//
//	ModelInferRequest  { model_name = 1; model_version = 2; id = 3; inputs = 5 }
//	InferInputTensor   { name = 1; datatype = 2; shape = 3 (packed int64); contents = 5 }
//	InferTensorContents{ fp64_contents = 7 (packed double) }
func EncodeV2Infer(model, id string, row []float64) []byte {
	var contents []byte
	packed := make([]byte, 0, 8*len(row))
	for _, v := range row {
		packed = protowire.AppendFixed64(packed, math.Float64bits(v))
	}
	contents = protowire.AppendTag(contents, 7, protowire.BytesType)
	contents = protowire.AppendBytes(contents, packed)

	var shape []byte
	shape = protowire.AppendVarint(shape, 1)
	shape = protowire.AppendVarint(shape, uint64(len(row)))

	var in []byte
	in = protowire.AppendTag(in, 1, protowire.BytesType)
	in = protowire.AppendString(in, "input-0")
	in = protowire.AppendTag(in, 2, protowire.BytesType)
	in = protowire.AppendString(in, "FP64")
	in = protowire.AppendTag(in, 3, protowire.BytesType)
	in = protowire.AppendBytes(in, shape)
	in = protowire.AppendTag(in, 5, protowire.BytesType)
	in = protowire.AppendBytes(in, contents)

	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendString(req, model)
	if id != "" {
		req = protowire.AppendTag(req, 3, protowire.BytesType)
		req = protowire.AppendString(req, id)
	}
	req = protowire.AppendTag(req, 5, protowire.BytesType)
	req = protowire.AppendBytes(req, in)
	return req
}

// EncodeV2Ready encodes ModelReadyRequest { name = 1 }.
func EncodeV2Ready(model string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendString(b, model)
}

// DecodeV2Ready decodes ModelReadyResponse { ready = 1 }.
func DecodeV2Ready(b []byte) (bool, error) {
	ready := false
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		if num == 1 && typ == protowire.VarintType {
			ready = x != 0
		}
		return nil
	})
	return ready, err
}

// DecodeV2Score returns the first number of the first output tensor of a ModelInferResponse
//
//	ModelInferResponse { outputs = 5; raw_output_contents = 6 }
//	InferOutputTensor  { name = 1; datatype = 2; shape = 3; contents = 5 }
//
// read from fp64 or fp32 contents, or from the raw bytes when the server sent those.
func DecodeV2Score(b []byte) (float64, error) {
	var (
		datatype string
		contents []byte
		raw      []byte
		seenOut  bool
	)
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 5 && typ == protowire.BytesType && !seenOut:
			seenOut = true
			return eachField(v, func(n protowire.Number, t protowire.Type, w []byte, _ uint64) error {
				switch {
				case n == 2 && t == protowire.BytesType:
					datatype = string(w)
				case n == 5 && t == protowire.BytesType:
					contents = w
				}
				return nil
			})
		case num == 6 && typ == protowire.BytesType && raw == nil:
			raw = v
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if !seenOut {
		return 0, errors.New("v2 response: no output tensor")
	}
	if raw != nil {
		switch {
		case datatype == "FP64" && len(raw) >= 8:
			return math.Float64frombits(binary.LittleEndian.Uint64(raw)), nil
		case datatype == "FP32" && len(raw) >= 4:
			return float64(math.Float32frombits(binary.LittleEndian.Uint32(raw))), nil
		}
		return 0, fmt.Errorf("v2 response: raw output of type %q and %d bytes", datatype, len(raw))
	}
	score, found := 0.0, false
	err = eachField(contents, func(n protowire.Number, t protowire.Type, w []byte, x uint64) error {
		if found {
			return nil
		}
		switch {
		case n == 7 && t == protowire.BytesType && len(w) >= 8: // fp64_contents, packed
			score, found = math.Float64frombits(binary.LittleEndian.Uint64(w)), true
		case n == 7 && t == protowire.Fixed64Type:
			score, found = math.Float64frombits(x), true
		case n == 6 && t == protowire.BytesType && len(w) >= 4: // fp32_contents, packed
			score, found = float64(math.Float32frombits(binary.LittleEndian.Uint32(w))), true
		case n == 6 && t == protowire.Fixed32Type:
			score, found = float64(math.Float32frombits(uint32(x))), true
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("v2 response: output of type %q without fp32/fp64 contents", datatype)
	}
	return score, err
}

// eachField calls fn for every top-level field of the message b: v holds the bytes of a
// length-delimited field, x the value of a varint or fixed field.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decode tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("decode field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

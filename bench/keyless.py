"""Benchmark: keyless signatures and chain validations per second through the service.

One `handshaker serve` process with an ECDSA P-256 and an RSA-2048 credential from the
development CA (granted `sign` to `local`). Measured in the same run:

- `local_*_per_s`: the same signature made in this process with `cryptography`, one
  core: the floor a keyless call is compared with (`*_ratio` = service rate / local);
- `unary_*_per_s`: `KeyOperations.Sign` with `--concurrency` calls in flight on one
  channel (grpc.aio);
- `operate_*_per_s`: the same operations pipelined on one `Operate` stream;
- `validate_per_s`: `CertificateValidator.ValidateChain` on the leaf's chain, unary;
- the service's CPU per operation.

The load runs in this process, on the same 2 cores as the service: the rates are the
machine's, the CPU per operation is the service's. The last line printed is one JSON
object.

    python bench/keyless.py [--json] [--seconds S] [--rounds N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from handshaker_wire.v1 import keyless_pb2 as kpb
from handshaker_wire.v1 import keyless_pb2_grpc as kpb_grpc
from service_harness import Service

HANDSHAKER = str(Path(sys.executable).parent / "handshaker")
SCHEMES = {"ecdsa": 0x0403, "rsa": 0x0804}
KEY_TYPES = {"ecdsa": "ecdsa-p256", "rsa": "rsa-2048"}
MESSAGE = os.urandom(130)  # a TLS 1.3 CertificateVerify's content is 130-162 bytes


def _keys(keystore: Path, *args: str) -> None:
    subprocess.run(
        [HANDSHAKER, "keys", *args, "--keystore", str(keystore)], check=True, capture_output=True
    )


def local_rate(key_file: Path, kind: str, seconds: float) -> float:
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        if kind == "ecdsa":
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
        else:
            assert isinstance(key, rsa.RSAPrivateKey)
            key.sign(MESSAGE, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        count += 1
    return count / (time.perf_counter() - began)


async def closed_loop(
    call: Callable[[], Awaitable[object]], seconds: float, concurrency: int
) -> float:
    done = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await call()
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - began)


async def operate_rate(
    stub: kpb_grpc.KeyOperationsStub, request: kpb.SignRequest, seconds: float, window: int
) -> float:
    """Operations pipelined on one Operate stream, `window` in flight."""
    call = stub.Operate()
    sent = answered = 0
    end = time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < end:
        while sent - answered < window:
            sent += 1
            await call.write(kpb.OperateRequest(operation_id=sent, sign=request))
        response = await call.read()
        assert response.WhichOneof("result") == "sign", response
        answered += 1
    await call.done_writing()
    while await call.read() is not grpc.aio.EOF:  # type: ignore[attr-defined]
        answered += 1
    return answered / (time.perf_counter() - began)


async def _signing(
    args: argparse.Namespace,
    service: Service,
    stub: kpb_grpc.KeyOperationsStub,
    keystore: Path,
    *,
    kind: str,
    scheme: int,
) -> dict[str, object]:
    """One key type's signatures: in this process, through Sign and through Operate."""
    request = kpb.SignRequest(
        key=kpb.KeyReference(credential=kind), signature_scheme=scheme, message=MESSAGE
    )
    await stub.Sign(request)  # warm: keystore loaded, channel up
    local, unary, operate, cpu = [], [], [], []
    for _ in range(args.rounds):
        local.append(local_rate(keystore / kind / "tls.key", kind, args.seconds))
        before = service.cpu_seconds()

        async def sign(request: kpb.SignRequest = request) -> object:
            return await stub.Sign(request)

        rate = await closed_loop(sign, args.seconds, args.concurrency)
        cpu.append((service.cpu_seconds() - before) / (rate * args.seconds))
        unary.append(rate)
        operate.append(await operate_rate(stub, request, args.seconds, args.concurrency))
    best_local = max(local)
    return {
        f"local_{kind}_per_s": round(best_local, 1),
        f"unary_{kind}_per_s": round(max(unary), 1),
        f"operate_{kind}_per_s": round(max(operate), 1),
        f"unary_{kind}_ratio": round(max(unary) / best_local, 3),
        f"operate_{kind}_ratio": round(max(operate) / best_local, 3),
        f"service_cpu_ms_per_unary_{kind}_sign": round(1000 * min(cpu), 3),
    }


async def _validating(
    args: argparse.Namespace, validator: kpb_grpc.CertificateValidatorStub, keystore: Path
) -> float:
    """ValidateChain of the ECDSA credential's chain, per second at best."""
    chain = [
        c.public_bytes(Encoding.DER)
        for c in x509.load_pem_x509_certificates((keystore / "ecdsa" / "tls.crt").read_bytes())
    ]
    validate = kpb.ValidateChainRequest(
        certificate_chain=chain, purpose=kpb.PURPOSE_SERVER_AUTH, dns_name="ecdsa.test"
    )
    assert (await validator.ValidateChain(validate)).verdict == kpb.VERDICT_VALID

    async def check() -> object:
        return await validator.ValidateChain(validate)

    rates = [await closed_loop(check, args.seconds, args.concurrency) for _ in range(args.rounds)]
    return round(max(rates), 1)


async def measure(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    keystore = folder / "keystore"
    for kind, key_type in KEY_TYPES.items():
        _keys(keystore, "generate", kind, "--san", f"DNS:{kind}.test", "--key-type", key_type)
        _keys(keystore, "allow", kind, "local", "--role", "sign")
    service = Service(keystore, ["--audit-log", str(folder / "audit.log")])
    result: dict[str, object] = {"benchmark": "keyless_operations"}
    try:
        channel = grpc.aio.insecure_channel(service.address)
        stub = kpb_grpc.KeyOperationsStub(channel)  # type: ignore[no-untyped-call]
        validator = kpb_grpc.CertificateValidatorStub(channel)  # type: ignore[no-untyped-call]
        for kind, scheme in SCHEMES.items():
            result.update(await _signing(args, service, stub, keystore, kind=kind, scheme=scheme))
        result["validate_per_s"] = await _validating(args, validator, keystore)
        await channel.close(None)
    finally:
        code = service.stop()
    result.update(
        concurrency=args.concurrency,
        rounds=args.rounds,
        round_seconds=args.seconds,
        cores=os.cpu_count(),
        python=sys.version.split()[0],
        service_exit_code=code,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds for each contender")
    parser.add_argument("--concurrency", type=int, default=32, help="operations in flight")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="handshaker-bench-") as folder:
        result = asyncio.run(measure(args, Path(folder)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""RFC 8448 example TLS 1.3 handshake traces as data: inputs, messages, records, secrets.

Sections 2 (the server's RSA key), 3 (Simple 1-RTT Handshake), 5 (HelloRetryRequest)
and 7 (Compatibility Mode). Every value is the RFC's own, byte for byte; handshake
messages include their 4-byte header, records their 5-byte header. Nothing here is
computed: tests derive their expectations from these bytes, never from the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

X25519 = 0x001D
SECP256R1 = 0x0017
TLS_AES_128_GCM_SHA256 = 0x1301
RSA_PSS_RSAE_SHA256 = 0x0804


def _hex(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts))


def _int(*parts: str) -> int:
    return int("".join(parts), 16)


@dataclass(frozen=True, slots=True)
class RsaKey:
    """RFC 8448 section 2: the RSA key of the server in every trace used here."""

    modulus: int
    public_exponent: int
    private_exponent: int
    prime1: int
    prime2: int
    exponent1: int
    exponent2: int
    coefficient: int

    def private_key(self) -> rsa.RSAPrivateKey:
        public = rsa.RSAPublicNumbers(self.public_exponent, self.modulus)
        numbers = rsa.RSAPrivateNumbers(
            p=self.prime1,
            q=self.prime2,
            d=self.private_exponent,
            dmp1=self.exponent1,
            dmq1=self.exponent2,
            iqmp=self.coefficient,
            public_numbers=public,
        )
        return numbers.private_key()


SERVER_RSA_KEY = RsaKey(
    modulus=_int(
        "b4bb498f8279303d980836399b36c6988c0c68de55e1bdb826d3901a2461eafd"
        "2de49a91d015abbc9a95137ace6c1af19eaa6af98c7ced43120998e187a80ee0"
        "ccb0524b1b018c3e0b63264d449a6d38e22a5fda430846748030530ef0461c8c"
        "a9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a8d88d79f7f1e3f"
    ),
    public_exponent=_int("010001"),
    private_exponent=_int(
        "04dea705d43a6ea7209dd8072111a83c81e322a59278b33480641eaf7c0a6985"
        "b8e31c44f6de62e1b4c2309f6126e77b7c41e923314bbfa3881305dc1217f16c"
        "819ce538e922f369828d0e57195d8c8488460207b2faa726bcf708bbd7db7f67"
        "9f893492fc2a622e08970aac441ce4e0c3088df25ae679233df8a3bda2ff9941"
    ),
    prime1=_int(
        "e435fb7cc83737756dacea96ab7f59a2cc1069db7deb190e17e33a532b273f30"
        "a327aa0aaabc58cd67466af9845fadc675fe094af92c4bd1f2c1bc33dd2e0515"
    ),
    prime2=_int(
        "cabd3bc0e0438664c8d4cc9f99977a94d9bbfead8e43870abae3f7eb8b4e0eee"
        "8af1d9b4719ba6196cf2cbbaeeebf8b3490afe9e9ffa74a88aa51fc645629303"
    ),
    exponent1=_int(
        "3f57345c27fe1b687e6e761627b78b1b826433dd760fa0bea6a6acf39490aa1b"
        "47cda4869d68f584dd5b5029bd32093b8258661fe715025e5d70a45a08d3d319"
    ),
    exponent2=_int(
        "183da01363bd2f2885cacbdc9964bf4764f1517636f86401286f71893c52ccfe"
        "40a6c23d0d086b47c6fb10d8fd1041e04def7e9a40ce957c417794e10412d139"
    ),
    coefficient=_int(
        "839ca9a085e4286b2c90e466997a2c681f21339aa3477814e4dec11833050ed5"
        "0dd13cc038048a43c59b2acc416889c037665fe5afa605969f8c01dfa5ca969d"
    ),
)


@dataclass(frozen=True, slots=True)
class Trace:
    """One RFC 8448 handshake: what each side drew, sent and derived.

    Private keys are raw scalars: 32 bytes for X25519 (RFC 7748) and the 32-byte
    big-endian scalar for secp256r1. In the HelloRetryRequest trace the client's
    first key share is X25519 and the negotiated group is secp256r1.
    """

    section: str
    title: str
    cipher_suite: int
    group: int
    signature_scheme: int

    # Inputs: randoms, legacy_session_id and the ephemeral key pairs.
    client_random: bytes
    server_random: bytes
    legacy_session_id: bytes
    client_private_keys: dict[int, bytes]
    client_public_keys: dict[int, bytes]
    server_private_key: bytes
    server_public_key: bytes

    # Handshake messages, each with its 4-byte header.
    client_hello: bytes
    server_hello: bytes
    encrypted_extensions: bytes
    certificate: bytes
    certificate_verify: bytes
    server_finished: bytes
    client_finished: bytes

    # Complete records as they cross the wire.
    client_hello_record: bytes
    server_hello_record: bytes
    server_flight_record: bytes  # EncryptedExtensions..Finished under the server handshake key
    client_finished_record: bytes
    client_close_notify_record: bytes
    server_close_notify_record: bytes

    # Key schedule (RFC 8446 section 7.1).
    shared_secret: bytes
    early_secret: bytes
    handshake_secret: bytes
    client_handshake_traffic_secret: bytes
    server_handshake_traffic_secret: bytes
    master_secret: bytes
    client_application_traffic_secret: bytes
    server_application_traffic_secret: bytes
    exporter_master_secret: bytes
    resumption_master_secret: bytes

    # Traffic keys and IVs (RFC 8446 section 7.3).
    server_handshake_key: bytes
    server_handshake_iv: bytes
    client_handshake_key: bytes
    client_handshake_iv: bytes
    server_application_key: bytes
    server_application_iv: bytes
    client_application_key: bytes
    client_application_iv: bytes

    server_finished_verify_data: bytes
    client_finished_verify_data: bytes

    # HelloRetryRequest trace only.
    hello_retry_request: bytes | None = None
    client_hello_2: bytes | None = None
    hello_retry_request_record: bytes | None = None
    client_hello_2_record: bytes | None = None

    # Compatibility-mode trace only: the dummy change_cipher_spec records.
    server_change_cipher_spec_record: bytes | None = None
    client_change_cipher_spec_record: bytes | None = None

    # Simple 1-RTT trace only: the client's first application_data record.
    client_application_data: bytes | None = None
    client_application_data_record: bytes | None = None

    @property
    def certificate_verify_signature(self) -> bytes:
        """The RSA-PSS signature inside CertificateVerify (after scheme and length)."""
        return self.certificate_verify[8:]

    @property
    def server_certificate_der(self) -> bytes:
        """The server's end-entity certificate inside the Certificate message."""
        # Certificate: header(4) | context<0..255> (empty) | list<3> | cert_data<3> | ...
        length = int.from_bytes(self.certificate[8:11], "big")
        return self.certificate[11 : 11 + length]

    def server_certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.server_certificate_der)


SIMPLE_1RTT = Trace(
    section="3",
    title="Simple 1-RTT Handshake",
    cipher_suite=TLS_AES_128_GCM_SHA256,
    group=X25519,
    signature_scheme=RSA_PSS_RSAE_SHA256,
    client_random=_hex("cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7"),
    server_random=_hex("a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e26928"),
    legacy_session_id=_hex(""),
    client_private_keys={
        X25519: _hex("49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005")
    },
    client_public_keys={
        X25519: _hex("99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c")
    },
    server_private_key=_hex("b1580eeadf6dd589b8ef4f2d5652578cc810e9980191ec8d058308cea216a21e"),
    server_public_key=_hex("c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f"),
    client_hello=_hex(
        "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef"
        "6283024dece7000006130113031302010000910000000b000900000673657276"
        "6572ff01000100000a00140012001d0017001800190100010101020103010400"
        "230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e"
        "51c13cae4d5413691e529aaf2c002b0003020304000d0020001e040305030603"
        "020308040805080604010501060102010402050206020202002d00020101001c"
        "00024001"
    ),
    server_hello=_hex(
        "020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155"
        "772ed3e2692800130100002e00330024001d0020c9828876112095fe66762bdb"
        "f7c672e156d6cc253b833df1dd69b1b04e751f0f002b00020304"
    ),
    encrypted_extensions=_hex(
        "080000240022000a00140012001d00170018001901000101010201030104001c0002400100000000"
    ),
    certificate=_hex(
        "0b0001b9000001b50001b0308201ac30820115a003020102020102300d06092a"
        "864886f70d01010b0500300e310c300a06035504031303727361301e170d3136"
        "303733303031323335395a170d3236303733303031323335395a300e310c300a"
        "0603550403130372736130819f300d06092a864886f70d010101050003818d00"
        "30818902818100b4bb498f8279303d980836399b36c6988c0c68de55e1bdb826"
        "d3901a2461eafd2de49a91d015abbc9a95137ace6c1af19eaa6af98c7ced4312"
        "0998e187a80ee0ccb0524b1b018c3e0b63264d449a6d38e22a5fda4308467480"
        "30530ef0461c8ca9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a"
        "8d88d79f7f1e3f0203010001a31a301830090603551d1304023000300b060355"
        "1d0f0404030205a0300d06092a864886f70d01010b05000381810085aad2a0e5"
        "b9276b908c65f73a7267170618a54c5f8a7b337d2df7a594365417f2eae8f8a5"
        "8c8f8172f9319cf36b7fd6c55b80f21a03015156726096fd335e5e67f2dbf102"
        "702e608ccae6bec1fc63a42a99be5c3eb7107c3c54e9b9eb2bd5203b1c3b84e0"
        "a8b2f759409ba3eac9d91d402dcc0cc8f8961229ac9187b42b4de10000"
    ),
    certificate_verify=_hex(
        "0f000084080400805a747c5d88fa9bd2e55ab085a61015b7211f824cd484145a"
        "b3ff52f1fda8477b0b7abc90db78e2d33a5c141a078653fa6bef780c5ea248ee"
        "aaa785c4f394cab6d30bbe8d4859ee511f602957b15411ac027671459e46445c"
        "9ea58c181e818e95b8c3fb0bf3278409d3be152a3da5043e063dda65cdf5aea2"
        "0d53dfacd42f74f3"
    ),
    server_finished=_hex(
        "140000209b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718"
    ),
    client_finished=_hex(
        "14000020a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61"
    ),
    client_hello_record=_hex(
        "16030100c4010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d99"
        "12ec18a2ef6283024dece7000006130113031302010000910000000b00090000"
        "06736572766572ff01000100000a00140012001d001700180019010001010102"
        "0103010400230000003300260024001d002099381de560e4bd43d23d8e435a7d"
        "bafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d0020001e04"
        "0305030603020308040805080604010501060102010402050206020202002d00"
        "020101001c00024001"
    ),
    server_hello_record=_hex(
        "160303005a020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb"
        "1434dac155772ed3e2692800130100002e00330024001d0020c9828876112095"
        "fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b00020304"
    ),
    server_flight_record=_hex(
        "17030302a2d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35e"
        "df7869fcf40aa40aa2b8ea73f848a7ca07612ef9f945cb960b4068905123ea78"
        "b111b429ba9191cd05d2a389280f526134aadc7fc78c4b729df828b5ecf7b13b"
        "d9aefb0e57f271585b8ea9bb355c7c79020716cfb9b1183ef3ab20e37d57a6b9"
        "d7477609aee6e122a4cf51427325250c7d0e509289444c9b3a648f1d71035d2e"
        "d65b0e3cdd0cbae8bf2d0b227812cbb360987255cc744110c453baa4fcd61092"
        "8d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559c09ead68694"
        "5ba246ab66e5edd8044b4c6de3fcf2a89441ac66272fd8fb330ef8190579b368"
        "4596c960bd596eea520a56a8d650f563aad27409960dca63d3e688611ea5e22f"
        "4415cf9538d51a200c27034272968a264ed6540c84838d89f72c24461aad6d26"
        "f59ecaba9acbbb317b66d902f4f292a36ac1b639c637ce343117b65962224531"
        "7b49eeda0c6258f100d7d961ffb138647e92ea330faeea6dfa31c7a84dc3bd7e"
        "1b7a6c7178af36879018e3f252107f243d243dc7339d5684c8b0378bf30244da"
        "8c87c843f5e56eb4c5e8280a2b48052cf93b16499a66db7cca71e4599426f7d4"
        "61e66f99882bd89fc50800becca62d6c74116dbd2972fda1fa80f85df881edbe"
        "5a37668936b335583b599186dc5c6918a396fa48a181d6b6fa4f9d62d513afbb"
        "992f2b992f67f8afe67f76913fa388cb5630c8ca01e0c65d11c66a1e2ac4c859"
        "77b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19ed2e31c0b3b66763038"
        "ebba42f3b38edc0399f3a9f23faa63978c317fc9fa66a73f60f0504de93b5b84"
        "5e275592c12335ee340bbc4fddd502784016e4b3be7ef04dda49f4b440a30cb5"
        "d2af939828fd4ae3794e44f94df5a631ede42c1719bfdabf0253fe5175be898e"
        "750edc53370d2b"
    ),
    client_finished_record=_hex(
        "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc"
        "44d87f38f80338ac98fc46deb384bd1caeacab6867d726c40546"
    ),
    client_close_notify_record=_hex("1703030013c9872760655666b74d7ff1153efd6db6d0b0e3"),
    server_close_notify_record=_hex("1703030013b58fd67166ebf599d24720cfbe7efa7a8864a9"),
    shared_secret=_hex("8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d"),
    early_secret=_hex("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a"),
    handshake_secret=_hex("1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac"),
    client_handshake_traffic_secret=_hex(
        "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21"
    ),
    server_handshake_traffic_secret=_hex(
        "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38"
    ),
    master_secret=_hex("18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919"),
    client_application_traffic_secret=_hex(
        "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5"
    ),
    server_application_traffic_secret=_hex(
        "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643"
    ),
    exporter_master_secret=_hex("fe22f881176eda18eb8f44529e6792c50c9a3f89452f68d8ae311b4309d3cf50"),
    resumption_master_secret=_hex(
        "7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c"
    ),
    server_handshake_key=_hex("3fce516009c21727d0f2e4e86ee403bc"),
    server_handshake_iv=_hex("5d313eb2671276ee13000b30"),
    client_handshake_key=_hex("dbfaa693d1762c5b666af5d950258d01"),
    client_handshake_iv=_hex("5bd3c71b836e0b76bb73265f"),
    server_application_key=_hex("9f02283b6c9c07efc26bb9f2ac92e356"),
    server_application_iv=_hex("cf782b88dd83549aadf1e984"),
    client_application_key=_hex("17422dda596ed5d9acd890e3c63f5051"),
    client_application_iv=_hex("5b78923dee08579033e523d9"),
    server_finished_verify_data=_hex(
        "9b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718"
    ),
    client_finished_verify_data=_hex(
        "a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61"
    ),
    client_application_data=_hex(
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f3031"
    ),
    client_application_data_record=_hex(
        "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f"
        "2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae6"
        "3aeebb21694915e4"
    ),
)

HELLO_RETRY_REQUEST = Trace(
    section="5",
    title="HelloRetryRequest",
    cipher_suite=TLS_AES_128_GCM_SHA256,
    group=SECP256R1,
    signature_scheme=RSA_PSS_RSAE_SHA256,
    client_random=_hex("b0b1c5a5aa37c5919f2ed1d5c6fff7fcb7849716945a2b8cee9258a346677b6f"),
    server_random=_hex("bb341d847fd789c47c387172dc0c9bf147fccacb5043d86ca4c598d3ff571b98"),
    legacy_session_id=_hex(""),
    client_private_keys={
        X25519: _hex("0ed02f8e8117efc75ca7ac32aa7e34eda64cdc0ddad154a5e85289f959f63204"),
        SECP256R1: _hex("ab5473467e19346ceb0a0414e41da21d4d2445bc3025afe97c4e8dc8d513da39"),
    },
    client_public_keys={
        X25519: _hex("e8e8e3f3b93a25ed97a14a7dcacb8a272c6288e585c6484d05262fcad062ad1f"),
        SECP256R1: _hex(
            "04a6da7392ec591e17abfd535964b99894d13befb221b3def2ebe3830eac8f01"
            "51812677c4d6d2237e85cf01d6910cfb83954e76ba7352830534159897e80657"
            "80"
        ),
    },
    server_private_key=_hex("8c510601f9765bfb8ed693449a48989859b5cfa879cb9f5443c41c5ff10634ed"),
    server_public_key=_hex(
        "04583e054b7a66672ae020ad9d2686fcc85b5ad41a134a0f03ee72b893052bd8"
        "5b4c8de6776f5b04ac07d83540eab3e3d9c547bc6528c4317d294686093a6cad"
        "7d"
    ),
    client_hello=_hex(
        "010000b00303b0b1c5a5aa37c5919f2ed1d5c6fff7fcb7849716945a2b8cee92"
        "58a346677b6f000006130113031302010000810000000b000900000673657276"
        "6572ff01000100000a00080006001d00170018003300260024001d0020e8e8e3"
        "f3b93a25ed97a14a7dcacb8a272c6288e585c6484d05262fcad062ad1f002b00"
        "03020304000d0020001e04030503060302030804080508060401050106010201"
        "0402050206020202002d00020101001c00024001"
    ),
    server_hello=_hex(
        "020000770303bb341d847fd789c47c387172dc0c9bf147fccacb5043d86ca4c5"
        "98d3ff571b9800130100004f003300450017004104583e054b7a66672ae020ad"
        "9d2686fcc85b5ad41a134a0f03ee72b893052bd85b4c8de6776f5b04ac07d835"
        "40eab3e3d9c547bc6528c4317d294686093a6cad7d002b00020304"
    ),
    encrypted_extensions=_hex("080000180016000a0008000600170018001d001c0002400100000000"),
    certificate=_hex(
        "0b0001b9000001b50001b0308201ac30820115a003020102020102300d06092a"
        "864886f70d01010b0500300e310c300a06035504031303727361301e170d3136"
        "303733303031323335395a170d3236303733303031323335395a300e310c300a"
        "0603550403130372736130819f300d06092a864886f70d010101050003818d00"
        "30818902818100b4bb498f8279303d980836399b36c6988c0c68de55e1bdb826"
        "d3901a2461eafd2de49a91d015abbc9a95137ace6c1af19eaa6af98c7ced4312"
        "0998e187a80ee0ccb0524b1b018c3e0b63264d449a6d38e22a5fda4308467480"
        "30530ef0461c8ca9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a"
        "8d88d79f7f1e3f0203010001a31a301830090603551d1304023000300b060355"
        "1d0f0404030205a0300d06092a864886f70d01010b05000381810085aad2a0e5"
        "b9276b908c65f73a7267170618a54c5f8a7b337d2df7a594365417f2eae8f8a5"
        "8c8f8172f9319cf36b7fd6c55b80f21a03015156726096fd335e5e67f2dbf102"
        "702e608ccae6bec1fc63a42a99be5c3eb7107c3c54e9b9eb2bd5203b1c3b84e0"
        "a8b2f759409ba3eac9d91d402dcc0cc8f8961229ac9187b42b4de10000"
    ),
    certificate_verify=_hex(
        "0f0000840804008033ab13d4462707231b5dcae6c8190b63d1dabc74f28c3953"
        "70da0b07e5b83066d0246a31acd95df475bfd799a4a70d33ad93d3a317a9b2c0"
        "d237a5685b219e774112e391a247607d1aeff1bbd0a39f382ee1a5fe88ae99ec"
        "59228e6497e45d48ce275a6d5ef40d169fb6f9d33b052ed3dcdd6b5a48baafff"
        "bcb290128415bd38"
    ),
    server_finished=_hex(
        "140000208863e6bfb0420a927fa27f34336a70ae426e968e3eb884945b96856dba3976d1"
    ),
    client_finished=_hex(
        "1400002023f52fdb0709a55bd7f79b991f25484087bcfd4d4380b12326a52a28b2e368e1"
    ),
    client_hello_record=_hex(
        "16030100b4010000b00303b0b1c5a5aa37c5919f2ed1d5c6fff7fcb784971694"
        "5a2b8cee9258a346677b6f000006130113031302010000810000000b00090000"
        "06736572766572ff01000100000a00080006001d00170018003300260024001d"
        "0020e8e8e3f3b93a25ed97a14a7dcacb8a272c6288e585c6484d05262fcad062"
        "ad1f002b0003020304000d0020001e0403050306030203080408050806040105"
        "01060102010402050206020202002d00020101001c00024001"
    ),
    server_hello_record=_hex(
        "160303007b020000770303bb341d847fd789c47c387172dc0c9bf147fccacb50"
        "43d86ca4c598d3ff571b9800130100004f003300450017004104583e054b7a66"
        "672ae020ad9d2686fcc85b5ad41a134a0f03ee72b893052bd85b4c8de6776f5b"
        "04ac07d83540eab3e3d9c547bc6528c4317d294686093a6cad7d002b00020304"
    ),
    server_flight_record=_hex(
        "170303029699bee20baf5b7fc727bfab6223928a381e6d0cf9c4da653f9d2a7b"
        "23f7de11cce842d5cf75631763450ffb8b0cc1d238e658af7a12adc86243114a"
        "b14a1da2fae42621ce483fb6242eabfaad52566b02b31d2eddedefeb80e66a99"
        "00d5f973b40c4fdf74719ecf1b68d7f9c3b6ceb903ca13dd1bb8f8187ae33417"
        "e1d152522c5822a1a03ad52c838c55953d610222874cce8e1790b229a2aa0b53"
        "c8d377ee720182951dc6181dc5d90bd1f0105ed1e84aa5f75957c6661897079e"
        "5ea5007449e3197bdc7c9beeedddeafdd844afa5c315ecfe65e576afe9098128"
        "80620ec7048b42d7f5c78d76f299d6d82534bdd8f512febc0ed3814aca470cd8"
        "000d3e1cb9962b052fbb950df683a52c2ba77ed3713b122937a6e5170964e2ab"
        "7969dcd980b3db9b458da7603124d6dc005e4d6e04b4d0c4baf3275db827dbba"
        "0a6db09672171fc057b3851d7e026841e2978fbd2346bbefdd0376bb1108fe9a"
        "cc92189f5650aa5e85d8e8c7b67ac510dba003d3d7e16350bb66d45013efd44c"
        "9b607c0d318c4c7d1a1f5cbc57e20611804e3787d7b4a4b5f08ed8fd70bdaead"
        "e02260b12ab842ef690b4a3ee7911e841b374ecd5ebbbc2a54d047b600336dd7"
        "d0c88b4bc10e58ee6cb656de7247fa20d8e91deb84628608cf80615b62e96c14"
        "91c7ac3755eb6901405d3474fe1ac79d106a0cee56c2577fc88480f96cb6b8c6"
        "81b7b68b53c146093908f350888175bdfb0b1e31ad61e30ba0adfe6d223aa03c"
        "0783b5001a57587c328a9afcfcfb978d1cd4328f7d9d60530e630befd96c0c81"
        "6ee20b0100768ae2a6df51fc68f172740a79af11398ee3be1252491fa9c69347"
        "9e877f94ab7c5f8cad480203e6ab7b87dd71e8a0729113df17f5eee86ce108d1"
        "d72007ec1cd13c85a6c149621e77b7d78d805a30f0be030c315e54"
    ),
    client_finished_record=_hex(
        "1703030035d74f1923c662fd34137c6f502f3dd2b93d951d1b3bc97e42afe23c"
        "31abea92fe91b474999e85e3b791ce252fe8c3e9f939a4120cb2"
    ),
    client_close_notify_record=_hex("17030300132ea6cdf749196023e2b3a49491695536426047"),
    server_close_notify_record=_hex("1703030013519fc5075cb0884349759ff9ef6f011bb4c6f2"),
    shared_secret=_hex("c142ce13ca11b5c2233652e63ad3d97844f1621fbfb9de69d547dc8fedeabeb4"),
    early_secret=_hex("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a"),
    handshake_secret=_hex("ce022e5e6e81e50736d773f2d3adfce8220d049bf510f0dbfac927ef4243b148"),
    client_handshake_traffic_secret=_hex(
        "158aa7ab8855073582b41d674b4055cabcc534728f659314861b4e08e2011566"
    ),
    server_handshake_traffic_secret=_hex(
        "3403e781e2af7b6508da28574f6e95a1abf162de83a97927c37672a4a0cef8a1"
    ),
    master_secret=_hex("1131545d0baf79ddce9b87f06945781a57dd18ef378dcd2060f8f9a569027ed8"),
    client_application_traffic_secret=_hex(
        "75ecf4b972525aa0dcd057c9944d4cd5d82671d8843141d7dc2a4ff15a21dc51"
    ),
    server_application_traffic_secret=_hex(
        "5c74f87df04225db0f8209c9de6429e49435fdefa7cad61864874d12f31cfc8d"
    ),
    exporter_master_secret=_hex("7c06d3ae106a3a374ace4837b3985cac67780a6e2c5c04b58319d584df09d223"),
    resumption_master_secret=_hex(
        "09170c6d472721566f9cf99b08699daff561ec8fb22d5a32c3f94ce009b69975"
    ),
    server_handshake_key=_hex("4646bfac1712c426cd78d8a24a8a6f6b"),
    server_handshake_iv=_hex("c7d395c08d62f297d13768ea"),
    client_handshake_key=_hex("2f1f918663d590e7421149a29d94b0b6"),
    client_handshake_iv=_hex("414d5485235e1a688793bd74"),
    server_application_key=_hex("f27a5d97bd25550c4823b0f3e5d29388"),
    server_application_iv=_hex("0dd631f7b71cbbc797c35fe7"),
    client_application_key=_hex("a7eb2a0525eb4331d58fcbf9f7ca2e9c"),
    client_application_iv=_hex("86e8be227c1bd2b3e39cb444"),
    server_finished_verify_data=_hex(
        "8863e6bfb0420a927fa27f34336a70ae426e968e3eb884945b96856dba3976d1"
    ),
    client_finished_verify_data=_hex(
        "23f52fdb0709a55bd7f79b991f25484087bcfd4d4380b12326a52a28b2e368e1"
    ),
    hello_retry_request=_hex(
        "020000ac0303cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e"
        "09e2c8a8339c001301000084003300020017002c0074007271dcd04bb88bc318"
        "9119398a00000000eefafc76c146b823b096f8aacad365dd0030953f4edf6256"
        "36e5f21bb2e23fcc654b1b5b40318d10d137abcbb87574e36e8a1f025f7dfa5d"
        "6e50781b5eda4aa15b0c8be778257d16aa3030e9e7841dd9e4c0342267e8ca0c"
        "af571fb2b7cff0f934b0002b00020304"
    ),
    client_hello_2=_hex(
        "010001fc0303b0b1c5a5aa37c5919f2ed1d5c6fff7fcb7849716945a2b8cee92"
        "58a346677b6f000006130113031302010001cd0000000b000900000673657276"
        "6572ff01000100000a00080006001d001700180033004700450017004104a6da"
        "7392ec591e17abfd535964b99894d13befb221b3def2ebe3830eac8f01518126"
        "77c4d6d2237e85cf01d6910cfb83954e76ba7352830534159897e8065780002b"
        "0003020304000d0020001e040305030603020308040805080604010501060102"
        "010402050206020202002c0074007271dcd04bb88bc3189119398a00000000ee"
        "fafc76c146b823b096f8aacad365dd0030953f4edf625636e5f21bb2e23fcc65"
        "4b1b5b40318d10d137abcbb87574e36e8a1f025f7dfa5d6e50781b5eda4aa15b"
        "0c8be778257d16aa3030e9e7841dd9e4c0342267e8ca0caf571fb2b7cff0f934"
        "b0002d00020101001c00024001001500af000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
    ),
    hello_retry_request_record=_hex(
        "16030300b0020000ac0303cf21ad74e59a6111be1d8c021e65b891c2a211167a"
        "bb8c5e079e09e2c8a8339c001301000084003300020017002c0074007271dcd0"
        "4bb88bc3189119398a00000000eefafc76c146b823b096f8aacad365dd003095"
        "3f4edf625636e5f21bb2e23fcc654b1b5b40318d10d137abcbb87574e36e8a1f"
        "025f7dfa5d6e50781b5eda4aa15b0c8be778257d16aa3030e9e7841dd9e4c034"
        "2267e8ca0caf571fb2b7cff0f934b0002b00020304"
    ),
    client_hello_2_record=_hex(
        "1603030200010001fc0303b0b1c5a5aa37c5919f2ed1d5c6fff7fcb784971694"
        "5a2b8cee9258a346677b6f000006130113031302010001cd0000000b00090000"
        "06736572766572ff01000100000a00080006001d001700180033004700450017"
        "004104a6da7392ec591e17abfd535964b99894d13befb221b3def2ebe3830eac"
        "8f0151812677c4d6d2237e85cf01d6910cfb83954e76ba7352830534159897e8"
        "065780002b0003020304000d0020001e04030503060302030804080508060401"
        "0501060102010402050206020202002c0074007271dcd04bb88bc3189119398a"
        "00000000eefafc76c146b823b096f8aacad365dd0030953f4edf625636e5f21b"
        "b2e23fcc654b1b5b40318d10d137abcbb87574e36e8a1f025f7dfa5d6e50781b"
        "5eda4aa15b0c8be778257d16aa3030e9e7841dd9e4c0342267e8ca0caf571fb2"
        "b7cff0f934b0002d00020101001c00024001001500af00000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000"
    ),
)

COMPATIBILITY_MODE = Trace(
    section="7",
    title="Compatibility Mode",
    cipher_suite=TLS_AES_128_GCM_SHA256,
    group=X25519,
    signature_scheme=RSA_PSS_RSAE_SHA256,
    client_random=_hex("4e640a3f2c2738f09c9418bd78edccd7559d0531199276d4d92a0e9ee9d77d09"),
    server_random=_hex("e5dd5948c435f7a38f0f0130708dc322d9df09abd4838117c183a7bb6d994f2c"),
    legacy_session_id=_hex("a80c165581a8e0d06c0018d54d3a06dd32cfd4051eb026fad3fd0ba99269e6ef"),
    client_private_keys={
        X25519: _hex("dea00b45695dc781f19d34a62c1afd31ab4369af1e855a3bbb258d8442cde6d7")
    },
    client_public_keys={
        X25519: _hex("8e7292cf3056dbb0d25fcbe55c107dc9bbf83dd9708f39203ba341249a7d9b63")
    },
    server_private_key=_hex("017c38a3647921ca2d9ed6bd7ae7132b94211b1331bb208c8ccdd51556409995"),
    server_public_key=_hex("3e30f0f4ba551afd62768341175f5265e4daf0c8841617aa4fafdd2142320c22"),
    client_hello=_hex(
        "010000dc03034e640a3f2c2738f09c9418bd78edccd7559d0531199276d4d92a"
        "0e9ee9d77d0920a80c165581a8e0d06c0018d54d3a06dd32cfd4051eb026fad3"
        "fd0ba99269e6ef00061301130313020100008d0000000b000900000673657276"
        "6572ff01000100000a00140012001d0017001800190100010101020103010400"
        "3300260024001d00208e7292cf3056dbb0d25fcbe55c107dc9bbf83dd9708f39"
        "203ba341249a7d9b63002b0003020304000d0020001e04030503060302030804"
        "0805080604010501060102010402050206020202002d00020101001c00024001"
    ),
    server_hello=_hex(
        "020000760303e5dd5948c435f7a38f0f0130708dc322d9df09abd4838117c183"
        "a7bb6d994f2c20a80c165581a8e0d06c0018d54d3a06dd32cfd4051eb026fad3"
        "fd0ba99269e6ef130100002e00330024001d00203e30f0f4ba551afd62768341"
        "175f5265e4daf0c8841617aa4fafdd2142320c22002b00020304"
    ),
    encrypted_extensions=_hex(
        "080000240022000a00140012001d00170018001901000101010201030104001c0002400100000000"
    ),
    certificate=_hex(
        "0b0001b9000001b50001b0308201ac30820115a003020102020102300d06092a"
        "864886f70d01010b0500300e310c300a06035504031303727361301e170d3136"
        "303733303031323335395a170d3236303733303031323335395a300e310c300a"
        "0603550403130372736130819f300d06092a864886f70d010101050003818d00"
        "30818902818100b4bb498f8279303d980836399b36c6988c0c68de55e1bdb826"
        "d3901a2461eafd2de49a91d015abbc9a95137ace6c1af19eaa6af98c7ced4312"
        "0998e187a80ee0ccb0524b1b018c3e0b63264d449a6d38e22a5fda4308467480"
        "30530ef0461c8ca9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a"
        "8d88d79f7f1e3f0203010001a31a301830090603551d1304023000300b060355"
        "1d0f0404030205a0300d06092a864886f70d01010b05000381810085aad2a0e5"
        "b9276b908c65f73a7267170618a54c5f8a7b337d2df7a594365417f2eae8f8a5"
        "8c8f8172f9319cf36b7fd6c55b80f21a03015156726096fd335e5e67f2dbf102"
        "702e608ccae6bec1fc63a42a99be5c3eb7107c3c54e9b9eb2bd5203b1c3b84e0"
        "a8b2f759409ba3eac9d91d402dcc0cc8f8961229ac9187b42b4de10000"
    ),
    certificate_verify=_hex(
        "0f00008408040080a2301a68dd1ceee6938fe9d40c46b9201b34d59952a37e06"
        "523a39cf8ba6c9c8b68ae94492af780516ed7b73c82812e99dd3fabea45e09d9"
        "c6848721c2808c61501b0c75e7fcaba5f78bef68a2c2b69b19558b3e40387eea"
        "93d25c7781c1cc00e9f519f7e2e4adb73e76d66089000a2dc866c2ed30bba50a"
        "0d457f19dc6eb9f3"
    ),
    server_finished=_hex(
        "14000020c8c3a8f1bff5274061f4bc3a7caffbdc9616094ca625caa65f8e76ed46db74d3"
    ),
    client_finished=_hex(
        "14000020692cab155cc6c100ead60733d0617f6fb09b71aa1e8c9accbbbc9e8ed336c1dd"
    ),
    client_hello_record=_hex(
        "16030100e0010000dc03034e640a3f2c2738f09c9418bd78edccd7559d053119"
        "9276d4d92a0e9ee9d77d0920a80c165581a8e0d06c0018d54d3a06dd32cfd405"
        "1eb026fad3fd0ba99269e6ef00061301130313020100008d0000000b00090000"
        "06736572766572ff01000100000a00140012001d001700180019010001010102"
        "01030104003300260024001d00208e7292cf3056dbb0d25fcbe55c107dc9bbf8"
        "3dd9708f39203ba341249a7d9b63002b0003020304000d0020001e0403050306"
        "03020308040805080604010501060102010402050206020202002d0002010100"
        "1c00024001"
    ),
    server_hello_record=_hex(
        "160303007a020000760303e5dd5948c435f7a38f0f0130708dc322d9df09abd4"
        "838117c183a7bb6d994f2c20a80c165581a8e0d06c0018d54d3a06dd32cfd405"
        "1eb026fad3fd0ba99269e6ef130100002e00330024001d00203e30f0f4ba551a"
        "fd62768341175f5265e4daf0c8841617aa4fafdd2142320c22002b00020304"
    ),
    server_flight_record=_hex(
        "17030302a248de891d9c3624a67a6c6f0601ab7ac20c1f6a9e14d2e6007e999e"
        "130367a8af1bcfea9498fbce19df4505eece3a25da523cbe55ea1b3bda4e9199"
        "5e455d500a4faa6227b7111e1c8547e2d7c179db215303d25827f3cd18f48f64"
        "91328cf5c0f814d388150bd9e9264aae491db6995069bea17665d5e0c817284d"
        "4ac21880054c3657331e23a9304dc88a15c04ec80bd3852bf7f9d3c6615b15fa"
        "c83bbca031c6d2310d9f5d7a4b020a4f7c19062b65c05a1d3264b557ec9d8e0f"
        "7cee27e36f793039de8dd96edfca9009e0651034bff31d7f349eece01d99fcb5"
        "fcab840d7707c72299c3b5d04564e880a33c5e846c762e3d922bb55303d1d87c"
        "c0f06573f17dcb9b8ffd35bbd883c1cb3aa24fcc325005f768ce2fb624ca97b6"
        "c4d98e17f35bc2c7940a06100c2d448db7180b2d862164435c9c210e9860394e"
        "05aab23ff1b0203f662c588da5bc4411477a30b41136c488a0a63fcab5c15ac6"
        "13226dae827a1d1fe95ece6b30bcee1560a8d408d264555e760f9bfc624c2c87"
        "fd0456c9bfb41bcd1a7b212786d2b67fd57804facfa1eef7cf2919d8b998c978"
        "9f763b4d9caa093a9ded43175d46a76b4d54f0ce0c5d2259b607e30a9d241263"
        "874fa59d6f570dc40d83a2d83bf9e9850d454c57806535a8998ae0357df92f00"
        "b9667344c24114ccc9ef539124b204e7e6e748c30a28a3d1d183997243eaccbb"
        "d33b0c1115a0327106a1e6a75271d4983086f632ff0eb8b4c63102cbcef5bb72"
        "dae1279d5de8eb19096d8cdb07fa8ea989788fac23e66e0488c193f3f3fea8c8"
        "838896bf3ae4b6848d42ced4bdf41abe6fc331b44225e7a1f7d3564147d5458e"
        "71aa909cb02be958bbc42e3aa5a27cc6eaf4b6fe51ae4495694d8ab6320aab92"
        "0183fd5b31a359042fbd67391ec5e4d1892a2e5210141a494e9301b24a113c47"
        "4c7f2a73457847"
    ),
    client_finished_record=_hex(
        "170303003532d030e273773a8696c799981af6ced07f87482e81565e394e87c8"
        "67f33df3d65b7506f1a626af91d4821d5f7a1f210ef8dd3c6d16"
    ),
    client_close_notify_record=_hex("17030300130f629155382dba23c4e2c5f7f84e6f2ed3083d"),
    server_close_notify_record=_hex("1703030013b7257b0fecaf69d4f09e3f891e2a25d1e28845"),
    shared_secret=_hex("eef790559077db5bb63b6684e4169f051e8fb34ce59bafce2f9c8ee68cc4eb79"),
    early_secret=_hex("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a"),
    handshake_secret=_hex("f91761354a67e9b07c6dcc3a55707efa69c4519d8040e5f215121e0df69afa4a"),
    client_handshake_traffic_secret=_hex(
        "2c3cb24a1081edb59518ee6861e89a6b72b3801afe7713e4cbbc21c0795bf831"
    ),
    server_handshake_traffic_secret=_hex(
        "cace3d555cc1c577cf970cff28cf978d6a9800085442e18d695b50f3151d18c8"
    ),
    master_secret=_hex("628112dae2f702488063e42de6c850a5c0820b90903e00abc31875da03d4bc5b"),
    client_application_traffic_secret=_hex(
        "743e4c6b56cf3909d1b06d01956ccd2c4b37758449aec41d98dae44924eaa299"
    ),
    server_application_traffic_secret=_hex(
        "b6b8144aa335ed3059c0c9c8f0ecabf7afc94af6643bdecdfd9210188fab7451"
    ),
    exporter_master_secret=_hex("fb69121cea334db459e12272d179baca2369b643d11a6ac72b8b27a5c964feb1"),
    resumption_master_secret=_hex(
        "0b5d4407cea0a42a3a81dd477647b7fe9180db297e5114f1ad8796b4dc475004"
    ),
    server_handshake_key=_hex("041091fdab29f2c8abfb156dc5fc8d54"),
    server_handshake_iv=_hex("7464d791685de05998fcbadb"),
    client_handshake_key=_hex("62d13c13ffd7402fc1c09e3d163665cb"),
    client_handshake_iv=_hex("7166f20028bf146dcfbd5a40"),
    server_application_key=_hex("edc4cbd0041c28cc7167441d7ca53e6a"),
    server_application_iv=_hex("bf6c7d8e0a9545b427dcf139"),
    client_application_key=_hex("33d7f9709756c966488ad4438437e673"),
    client_application_iv=_hex("c5f30d34b0e91b7d6c8eea65"),
    server_finished_verify_data=_hex(
        "c8c3a8f1bff5274061f4bc3a7caffbdc9616094ca625caa65f8e76ed46db74d3"
    ),
    client_finished_verify_data=_hex(
        "692cab155cc6c100ead60733d0617f6fb09b71aa1e8c9accbbbc9e8ed336c1dd"
    ),
    server_change_cipher_spec_record=_hex("140303000101"),
    client_change_cipher_spec_record=_hex("140303000101"),
)

TRACES: tuple[Trace, ...] = (SIMPLE_1RTT, HELLO_RETRY_REQUEST, COMPATIBILITY_MODE)

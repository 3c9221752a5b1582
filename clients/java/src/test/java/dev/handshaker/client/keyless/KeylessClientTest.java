package dev.handshaker.client.keyless;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.KeyPairGenerator;
import java.security.MessageDigest;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.SignatureException;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.Arrays;
import java.util.List;
import javax.crypto.Cipher;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * KeylessClient's calls and the provider's Signature and Cipher against a real service: every
 * signature is checked with the certificate's public key by the stock providers, every
 * decryption against what the stock provider encrypted.
 */
class KeylessClientTest {
  private static KeylessService service;
  private static KeylessClient client;

  @BeforeAll
  static void start() throws Exception {
    service = KeylessService.create();
    service.generate("web", "ecdsa-p256", "DNS:web.test");
    service.allow("web", "sign", "decrypt");
    service.generate("legacy", "rsa-2048", "DNS:legacy.test");
    service.allow("legacy", "sign", "decrypt");
    service.generate("edge", "ed25519", "DNS:edge.test");
    service.allow("edge", "sign");
    // Granted for handshakes only: GetCredential answers, Sign and Decrypt are refused.
    service.generate("served", "rsa-2048", "DNS:served.test");
    service.allow("served", "server");
    service.generateForeign("foreign", "DNS:web.test");
    service.start();
    client = KeylessClient.forAddress(service.address());
    service.awaitCredential(client, "served");
    KeylessProvider.install();
  }

  @AfterAll
  static void stop() throws Exception {
    if (client != null) {
      client.close();
    }
    if (service != null) {
      service.close();
    }
  }

  @Test
  void describesCredentialsByNameAndSubjectKeyId() throws Exception {
    KeylessCredential web = client.credential("web");
    assertEquals("web", web.name());
    assertEquals("ecdsa-p256", web.keyType());
    assertEquals("EC", web.keyAlgorithm());
    assertEquals(1, web.chain().length, "the leaf (the development CA is the trust anchor)");
    assertTrue(web.leaf().getSubjectAlternativeNames().toString().contains("web.test"));
    assertTrue(web.signatureSchemes().contains(0x0403));
    assertFalse(web.decrypts());
    assertEquals("web", client.credential(KeyRef.subjectKeyId(web.subjectKeyId())).name());

    KeylessCredential legacy = client.credential("legacy");
    assertEquals("RSA", legacy.keyAlgorithm());
    assertTrue(legacy.decrypts(), "the dev CA's RSA leaves allow keyEncipherment");
  }

  @Test
  void signsMessagesAndDigestsThatTheCertificateVerifies() throws Exception {
    KeylessCredential web = client.credential("web");
    byte[] message = "hello".getBytes(StandardCharsets.UTF_8);
    Signature verifier = Signature.getInstance("SHA256withECDSA");
    verifier.initVerify(web.leaf().getPublicKey());
    verifier.update(message);
    assertTrue(verifier.verify(client.sign(KeyRef.credential("web"), 0x0403, message)));

    byte[] digest = MessageDigest.getInstance("SHA-256").digest(message);
    verifier.initVerify(web.leaf().getPublicKey());
    verifier.update(message);
    assertTrue(verifier.verify(client.signDigest(KeyRef.credential("web"), 0x0403, digest)));
  }

  @Test
  void providerSignsWithEveryAlgorithmJsseUses() throws Exception {
    byte[] content = new byte[300];
    new SecureRandom().nextBytes(content);
    KeylessCredential web = client.credential("web");
    KeylessCredential legacy = client.credential("legacy");
    KeylessCredential edge = client.credential("edge");
    for (String algorithm : List.of("SHA256withECDSA", "SHA384withECDSA", "SHA512withECDSA")) {
      assertSignatureVerifies(algorithm, null, web, content);
    }
    for (String algorithm : List.of("SHA256withRSA", "SHA384withRSA", "SHA512withRSA")) {
      assertSignatureVerifies(algorithm, null, legacy, content);
    }
    assertSignatureVerifies("RSASSA-PSS",
        new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1), legacy, content);
    assertSignatureVerifies("RSASSA-PSS",
        new PSSParameterSpec("SHA-384", "MGF1", MGF1ParameterSpec.SHA384, 48, 1), legacy, content);
    assertSignatureVerifies("Ed25519", null, edge, content);
  }

  private static void assertSignatureVerifies(String algorithm, PSSParameterSpec pss, KeylessCredential credential,
      byte[] content) throws Exception {
    // As JSSE asks: no provider named, so the choice waits for the key.
    Signature signer = Signature.getInstance(algorithm);
    if (pss != null) {
      signer.setParameter(pss);
    }
    signer.initSign(KeylessPrivateKey.of(client, credential));
    assertEquals(KeylessProvider.NAME, signer.getProvider().getName(), algorithm);
    signer.update(content);
    byte[] signature = signer.sign();

    Signature verifier = Signature.getInstance(algorithm);
    if (pss != null) {
      verifier.setParameter(pss);
    }
    verifier.initVerify(credential.leaf().getPublicKey());
    if (pss == null) {
      assertNotEquals(KeylessProvider.NAME, verifier.getProvider().getName(), "verification stays with the stock providers");
    }
    // With PSS, setParameter before initVerify fixes the provider before the key is known (the
    // first one, this): its Signature then verifies through the next provider.
    verifier.update(content);
    assertTrue(verifier.verify(signature), algorithm + " by " + credential.name());
  }

  @Test
  void otherKeysStayWithTheStockProviders() throws Exception {
    KeyPair pair = KeyPairGenerator.getInstance("EC").generateKeyPair();
    Signature signer = Signature.getInstance("SHA256withECDSA");
    signer.initSign(pair.getPrivate());
    assertNotEquals(KeylessProvider.NAME, signer.getProvider().getName());
    signer.update(new byte[] {1, 2, 3});
    byte[] signature = signer.sign();
    signer.initVerify(pair.getPublic());
    signer.update(new byte[] {1, 2, 3});
    assertTrue(signer.verify(signature));

    KeyPair rsa = KeyPairGenerator.getInstance("RSA").generateKeyPair();
    Cipher cipher = Cipher.getInstance("RSA/ECB/PKCS1Padding");
    cipher.init(Cipher.DECRYPT_MODE, rsa.getPrivate());
    assertNotEquals(KeylessProvider.NAME, cipher.getProvider().getName());
  }

  @Test
  void keyOfTheWrongTypeOrSchemeIsRefusedAtInit() throws Exception {
    // JSSE moves on to its next signature scheme only when init fails, so init must.
    KeylessPrivateKey web = KeylessPrivateKey.of(client, client.credential("web"));
    assertThrows(InvalidKeyException.class, () -> Signature.getInstance("SHA256withRSA").initSign(web));
    Signature pss = Signature.getInstance("RSASSA-PSS");
    pss.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 20, 1));
    KeylessPrivateKey legacy = KeylessPrivateKey.of(client, client.credential("legacy"));
    assertThrows(Exception.class, () -> pss.initSign(legacy), "a salt other than the hash's length");
  }

  @Test
  void cipherDecryptsWhatTheCertificateEncrypted() throws Exception {
    KeylessCredential legacy = client.credential("legacy");
    byte[] premaster = new byte[48];
    new SecureRandom().nextBytes(premaster);
    premaster[0] = 3;
    premaster[1] = 3;
    Cipher encrypt = Cipher.getInstance("RSA/ECB/PKCS1Padding");
    encrypt.init(Cipher.ENCRYPT_MODE, legacy.leaf().getPublicKey());
    byte[] ciphertext = encrypt.doFinal(premaster);

    assertArrayEquals(premaster, client.decrypt(KeyRef.credential("legacy"), ciphertext, 48));

    Cipher decrypt = Cipher.getInstance("RSA/ECB/PKCS1Padding");
    decrypt.init(Cipher.DECRYPT_MODE, KeylessPrivateKey.of(client, legacy));
    assertEquals(KeylessProvider.NAME, decrypt.getProvider().getName());
    assertArrayEquals(premaster, decrypt.doFinal(ciphertext));

    // Implicit rejection: a ciphertext that is not a 48-byte plaintext yields 48 other bytes.
    byte[] garbled = ciphertext.clone();
    garbled[10] ^= 0x55;
    byte[] rejected = decrypt.doFinal(garbled);
    assertEquals(48, rejected.length);
    assertFalse(Arrays.equals(premaster, rejected));

    Cipher ecKey = Cipher.getInstance("RSA/ECB/PKCS1Padding");
    assertThrows(InvalidKeyException.class,
        () -> ecKey.init(Cipher.DECRYPT_MODE, KeylessPrivateKey.of(client, client.credential("web"))));
  }

  @Test
  void unknownCredentialIsNotFoundAndNoGrantIsPermissionDenied() throws Exception {
    KeylessException unknown = assertThrows(KeylessException.class, () -> client.credential("nosuch"));
    assertEquals(Status.Code.NOT_FOUND, unknown.code());
    unknown = assertThrows(KeylessException.class,
        () -> client.sign(KeyRef.credential("nosuch"), 0x0403, new byte[] {1}));
    assertEquals(Status.Code.NOT_FOUND, unknown.code());

    KeylessCredential served = client.credential("served");
    KeylessException denied = assertThrows(KeylessException.class,
        () -> client.sign(KeyRef.credential("served"), 0x0804, new byte[] {1}));
    assertEquals(Status.Code.PERMISSION_DENIED, denied.code());
    denied = assertThrows(KeylessException.class,
        () -> client.decrypt(KeyRef.credential("served"), new byte[256], 48));
    assertEquals(Status.Code.PERMISSION_DENIED, denied.code());

    // Through the provider the status is the SignatureException's cause.
    Signature signer = Signature.getInstance("SHA256withRSA");
    signer.initSign(KeylessPrivateKey.of(client, served));
    signer.update(new byte[] {1});
    SignatureException failed = assertThrows(SignatureException.class, signer::sign);
    assertEquals(Status.Code.PERMISSION_DENIED, ((KeylessException) failed.getCause()).code());

    KeylessException invalid = assertThrows(KeylessException.class,
        () -> client.sign(KeyRef.credential("web"), 0x9999, new byte[] {1}));
    assertEquals(Status.Code.INVALID_ARGUMENT, invalid.code());
    assertTrue(invalid.getMessage().contains("signature_scheme"), invalid.getMessage());
  }

  @Test
  void validatesChainsWithTheServicesVerdict() throws Exception {
    List<java.security.cert.X509Certificate> web = Arrays.asList(client.credential("web").chain());
    ChainVerdict valid = client.validate(web, KeylessClient.Purpose.SERVER_AUTH, PeerName.dns("web.test"), null);
    assertTrue(valid.valid());
    assertEquals(2, valid.verifiedPath().size());
    valid.requireValid();

    ChainVerdict wrongName = client.validate(web, KeylessClient.Purpose.SERVER_AUTH, PeerName.dns("other.test"), null);
    assertFalse(wrongName.valid());
    assertEquals(KeylessCertificateException.BAD_CERTIFICATE, wrongName.alert());
    KeylessCertificateException thrown = assertThrows(KeylessCertificateException.class, wrongName::requireValid);
    assertEquals(42, thrown.alert());
    assertFalse(thrown.reason().isEmpty());

    ChainVerdict unknownCa = client.validate(Arrays.asList(service.foreignChain("foreign")),
        KeylessClient.Purpose.SERVER_AUTH, PeerName.dns("web.test"), null);
    assertEquals(KeylessCertificateException.UNKNOWN_CA, unknownCa.alert());

    KeylessException noBundle = assertThrows(KeylessException.class,
        () -> client.validate(web, KeylessClient.Purpose.SERVER_AUTH, PeerName.dns("web.test"), "nosuch"));
    assertEquals(Status.Code.NOT_FOUND, noBundle.code());
  }

  @Test
  void deadlineBoundsEveryCall() throws Exception {
    KeylessClient hasty = client.withTimeout(java.time.Duration.ofNanos(1));
    KeylessException late = assertThrows(KeylessException.class, () -> hasty.credential("web"));
    assertEquals(Status.Code.DEADLINE_EXCEEDED, late.code());
  }
}

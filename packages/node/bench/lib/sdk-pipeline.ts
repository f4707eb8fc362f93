/**
 * The same pipeline through @passerelle/protocol instead of bare jose — build the referral (schema
 * validation, salted disclosures), seal, open, sign the receipt, verify the receipt — with the
 * same message content, consent record and concurrency. It is the ceiling of any node built on
 * the SDK, and splits the distance between the node and the raw limit into what the SDK costs and
 * what the node adds (HTTP, request signatures, consent and agreement checks, storage, logging).
 */
import { buildReferral, generateEncryptionKey, generateSigningKey, open, seal, signReceipt, verifyReceipt, type PublicEncryptionJwk } from '@passerelle/protocol';
import { REFERRAL_BODY, REFERRAL_DATA } from './referral.js';
import type { RawPipeline } from './raw-pipeline.js';

export interface SdkPipelineInput {
  from: string;
  to: string;
  agreementId: string;
  consentId: string;
  /** The consent record the node carries in every message (its size counts). */
  consentRecord: string;
}

export async function sdkPipeline(input: SdkPipelineInput): Promise<RawPipeline> {
  const sender = await generateSigningKey();
  const receiver = await generateSigningKey();
  const enc = await generateEncryptionKey();
  const recipientKey = enc.publicJwk as PublicEncryptionJwk & { kid: string };
  let index = 0;

  const one = async (): Promise<void> => {
    const message = buildReferral({
      from: input.from,
      to: input.to,
      agreementId: input.agreementId,
      consentId: input.consentId,
      consentRecord: input.consentRecord,
      body: REFERRAL_BODY as never,
      data: REFERRAL_DATA as never,
    });
    const sealed = await seal(message, { signingKey: sender, recipientKey });
    const opened = await open(sealed.jwe, {
      self: input.to,
      expectedSender: input.from,
      decryptionKey: (kid) => (kid === enc.kid ? enc : undefined),
      resolveSenderKey: (_iss, kid) => (kid === sender.kid ? sender.publicJwk : undefined),
    });
    const receipt = await signReceipt(
      { receiver: input.to, sender: input.from, messageId: opened.header.id, digest: sealed.digest, status: 'accepted', log: { index: index++ } },
      receiver,
    );
    await verifyReceipt(receipt, {
      receiver: input.to,
      sender: input.from,
      messageId: message.header.id,
      digest: sealed.digest,
      resolveKey: (kid) => (kid === receiver.kid ? receiver.publicJwk : undefined),
    });
  };

  return {
    async run(messages, concurrency) {
      let next = 0;
      const lane = async () => {
        while (next++ < messages) await one();
      };
      const start = performance.now();
      await Promise.all(Array.from({ length: concurrency }, lane));
      return messages / ((performance.now() - start) / 1000);
    },
  };
}

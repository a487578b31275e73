// How an SMS body is billed: GSM-7 (160 characters in one segment, 153 per segment when split; a few
// characters count twice) or, with any other character, UCS-2 (70, then 67 per segment, in UTF-16 units).

const GSM7 =
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
  "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENDED = "^{}\\[~]|€\f";

/** {encoding: "GSM-7" | "UCS-2", units, segments} of an SMS body (segments is 0 for an empty body). */
export function smsSegments(text) {
  let units = 0;
  let gsm = true;
  for (const char of text) {
    if (GSM7.includes(char)) units += 1;
    else if (GSM7_EXTENDED.includes(char)) units += 2;
    else {
      gsm = false;
      break;
    }
  }
  if (!gsm) units = text.length; // UTF-16 code units: an emoji counts twice
  const [single, split] = gsm ? [160, 153] : [70, 67];
  const segments = units === 0 ? 0 : units <= single ? 1 : Math.ceil(units / split);
  return { encoding: gsm ? "GSM-7" : "UCS-2", units, segments };
}

/** Under the composer of an SMS conversation: how many segments the reply will be sent as. */
export function refreshSmsCount(chat) {
  const { count, text } = chat.els;
  const sms = chat.conv.channel === "sms" && chat.mode !== "note" && text.value.length > 0;
  count.hidden = !sms;
  if (!sms) return;
  const { encoding, units, segments } = smsSegments(text.value);
  const plural = segments === 1 ? "" : "s";
  count.textContent = `${segments} SMS segment${plural} · ${units} ${encoding} characters`;
  count.classList.toggle("is-multi", segments > 1);
}

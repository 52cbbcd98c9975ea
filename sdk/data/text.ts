// Text templates shared by the worlds: number words, articles, plurals, lists. Every text
// a world emits is already in the tokenizer's normal form (lowercase, words separated by
// one space, punctuation attached to the word before it, ` ; ` between boxes).

export const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five'] as const;

export function numberWord(n: number): string {
  const w = NUMBER_WORDS[n];
  if (w === undefined) throw new RangeError(`no number word for ${n}`);
  return w;
}

/** 'a' or 'an' for the phrase that follows. */
export function article(phrase: string): string {
  return /^[aeiou]/.test(phrase) ? 'an' : 'a';
}

/** English plural of a noun phrase (its last word). */
export function plural(phrase: string): string {
  if (/(s|x|ch|sh)$/.test(phrase)) return `${phrase}es`;
  return `${phrase}s`;
}

/** "a red circle" / "two blue squares". */
export function counted(n: number, phrase: string): string {
  return n === 1 ? `${article(phrase)} ${phrase}` : `${numberWord(n)} ${plural(phrase)}`;
}

/** "x", "x and y", "x, y and z". */
export function listPhrase(items: readonly string[]): string {
  if (items.length <= 1) return items[0] ?? '';
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** Words of a text as the tokenizer splits them (for vocabulary checks). */
export function textWords(text: string): string[] {
  return text
    .replace(/([?.,;:!])/g, ' $1 ')
    .split(/\s+/)
    .filter((w) => w.length > 0);
}

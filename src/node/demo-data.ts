// The demo datanet (`npm start`): six well-known KJV passages (public domain), contributed by three
// demo contributors (anvil's fixed dev accounts #3–#5; #2 owns the datanet). Its creation record is
// fixed (name, owner, createdAt), so the datanet id and version root are the same on every start
// and equal to the ones the committed demo adapter's training record names
// (scripts/make-demo-model.ts trains that adapter with `openlora train --datanet` on this datanet).
// The base model never saw these passages: make-demo-model.ts leaves them out of its corpus.

export const DEMO_DATANET = {
  name: 'demo datanet (KJV passages)',
  description: 'DEMO: six passages of the King James Version (public domain), one per contribution',
  owner: '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc',
  /** 2026-01-01T00:00:00Z: a fixed creation time keeps the datanet id stable */
  createdAt: 1_767_225_600_000
} as const

export const DEMO_CONTRIBUTORS = {
  ada: '0x90f79bf6eb2c4f870365e785982e1f101e93b906',
  bo: '0x15d34aaf54267db7d7c367839aaf71a00a2c6a65',
  cy: '0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc'
} as const

export interface DemoRecord {
  /** the `bible` program's book abbreviation and the verse range */
  ref: { book: string; chapter: number; from: number; to: number }
  title: string
  contributor: keyof typeof DEMO_CONTRIBUTORS
  /** the verses joined by single spaces, exactly as the corpus prints them */
  text: string
}

export const DEMO_RECORDS: DemoRecord[] = [
  {
    ref: { book: 'Eccl', chapter: 3, from: 1, to: 8 },
    title: 'Ecclesiastes 3:1-8',
    contributor: 'ada',
    text: 'To every thing there is a season, and a time to every purpose under the heaven: A time to be born, and a time to die; a time to plant, and a time to pluck up that which is planted; A time to kill, and a time to heal; a time to break down, and a time to build up; A time to weep, and a time to laugh; a time to mourn, and a time to dance; A time to cast away stones, and a time to gather stones together; a time to embrace, and a time to refrain from embracing; A time to get, and a time to lose; a time to keep, and a time to cast away; A time to rend, and a time to sew; a time to keep silence, and a time to speak; A time to love, and a time to hate; a time of war, and a time of peace.'
  },
  {
    ref: { book: 'Psa', chapter: 23, from: 1, to: 6 },
    title: 'Psalm 23',
    contributor: 'bo',
    text: "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth me beside the still waters. He restoreth my soul: he leadeth me in the paths of righteousness for his name's sake. Yea, though I walk through the valley of the shadow of death, I will fear no evil: for thou art with me; thy rod and thy staff they comfort me. Thou preparest a table before me in the presence of mine enemies: thou anointest my head with oil; my cup runneth over. Surely goodness and mercy shall follow me all the days of my life: and I will dwell in the house of the LORD for ever."
  },
  {
    ref: { book: '1Cor', chapter: 13, from: 4, to: 8 },
    title: '1 Corinthians 13:4-8',
    contributor: 'cy',
    text: 'Charity suffereth long, and is kind; charity envieth not; charity vaunteth not itself, is not puffed up, Doth not behave itself unseemly, seeketh not her own, is not easily provoked, thinketh no evil; Rejoiceth not in iniquity, but rejoiceth in the truth; Beareth all things, believeth all things, hopeth all things, endureth all things. Charity never faileth: but whether there be prophecies, they shall fail; whether there be tongues, they shall cease; whether there be knowledge, it shall vanish away.'
  },
  {
    ref: { book: 'Mat', chapter: 5, from: 3, to: 10 },
    title: 'Matthew 5:3-10',
    contributor: 'ada',
    text: "Blessed are the poor in spirit: for theirs is the kingdom of heaven. Blessed are they that mourn: for they shall be comforted. Blessed are the meek: for they shall inherit the earth. Blessed are they which do hunger and thirst after righteousness: for they shall be filled. Blessed are the merciful: for they shall obtain mercy. Blessed are the pure in heart: for they shall see God. Blessed are the peacemakers: for they shall be called the children of God. Blessed are they which are persecuted for righteousness' sake: for theirs is the kingdom of heaven."
  },
  {
    ref: { book: 'John', chapter: 1, from: 1, to: 5 },
    title: 'John 1:1-5',
    contributor: 'bo',
    text: 'In the beginning was the Word, and the Word was with God, and the Word was God. The same was in the beginning with God. All things were made by him; and without him was not any thing made that was made. In him was life; and the life was the light of men. And the light shineth in darkness; and the darkness comprehended it not.'
  },
  {
    ref: { book: 'Eccl', chapter: 1, from: 2, to: 9 },
    title: 'Ecclesiastes 1:2-9',
    contributor: 'cy',
    text: 'Vanity of vanities, saith the Preacher, vanity of vanities; all is vanity. What profit hath a man of all his labour which he taketh under the sun? One generation passeth away, and another generation cometh: but the earth abideth for ever. The sun also ariseth, and the sun goeth down, and hasteth to his place where he arose. The wind goeth toward the south, and turneth about unto the north; it whirleth about continually, and the wind returneth again according to his circuits. All the rivers run into the sea; yet the sea is not full; unto the place from whence the rivers come, thither they return again. All things are full of labour; man cannot utter it: the eye is not satisfied with seeing, nor the ear filled with hearing. The thing that hath been, it is that which shall be; and that which is done is that which shall be done: and there is no new thing under the sun.'
  }
]

/** The job `npm start` suggests: the opening of the first record, which the adapter continues. */
export const DEMO_PROMPT = 'To every thing there is a season,'

/** What creating the demo datanet needs of the attribution layer's DatanetStore. */
export interface DemoDatanetStore {
  getDatanet(id: string): Promise<{ id: string; latestVersion: number; contributions: number }>
  createDatanet(input: {
    name: string
    owner: string
    description: string
    createdAt: number
  }): Promise<{ id: string }>
  contribute(id: string, doc: { text: string; contributor: string }): Promise<unknown>
  publish(id: string): Promise<{ version: number; root: string }>
}

/**
 * Creates and publishes the demo datanet (version 1: one contribution per record, in order) unless
 * this store has it already; returns its id. Same records, same contributors → same root.
 */
export async function ensureDemoDatanet(store: DemoDatanetStore): Promise<string> {
  const created = await store.createDatanet({ ...DEMO_DATANET }).catch(async (err) => {
    // the id is fixed: a store that holds it already answers "already exists"
    const id = (err as { data?: { id?: string } }).data?.id
    if (id === undefined) throw err
    return { id }
  })
  const existing = await store.getDatanet(created.id)
  if (existing.latestVersion >= 1) return created.id
  // an interrupted first start may have stored some of the records already
  for (const r of DEMO_RECORDS.slice(existing.contributions))
    await store.contribute(created.id, { text: r.text, contributor: DEMO_CONTRIBUTORS[r.contributor] })
  await store.publish(created.id)
  return created.id
}

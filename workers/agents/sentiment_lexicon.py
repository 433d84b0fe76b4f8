"""Hand-built finance and crypto lexicon read by the news-sentiment agent (workers/agents/sentiment.py).

Valences are on a -4..+4 scale (VADER's convention), written in base form: the agent stems both the
lexicon and the headline with the same light stemmer, so `plunge` also covers plunges/plunged/plunging.
Words are hand-picked in the spirit of Loughran–McDonald's finance reading (e.g. `liability`, `charge`
are negative, `tax` is not; nothing is copied from their list), plus crypto-market vocabulary. It was
refined against errors on the first 400 SemEval dev headlines only; bench/sentiment_quality.py keeps
the last 100 as a lock-box. The trained model in sentiment_model.json corrects the rest.
"""

from __future__ import annotations

# Packed tables read better than one entry per line.
# fmt: off

VALENCE: dict[str, float] = {
    # -- results, guidance and analysts
    "beat": 2.0, "beats": 2.0, "exceed": 2.0, "surpass": 2.0, "outperform": 2.0, "outpace": 1.5,
    "upgrade": 2.5, "overweight": 1.5, "upbeat": 2.0, "bullish": 2.5, "bull": 1.5, "optimism": 2.0,
    "optimistic": 2.0, "confident": 2.0, "upside": 1.5, "better": 1.5, "best": 2.0, "strong": 2.0,
    "stronger": 2.0, "strongest": 2.5, "strength": 1.5, "robust": 2.0, "solid": 1.5, "healthy": 1.5,
    "resilient": 2.0, "profitable": 2.0, "profitability": 1.0, "profit": 1.0, "record": 0.5, "growth": 1.5,
    "expansion": 1.0, "turnaround": 1.5, "recovery": 1.5, "momentum": 1.0, "positive": 2.0,
    "improvement": 1.5, "ahead": 1.0, "upswing": 2.0, "boom": 2.0, "thrive": 2.0, "miss": -2.0,
    "disappoint": -2.5, "weak": -2.0, "weaker": -2.0, "weakness": -2.0, "poor": -2.0, "downgrade": -2.5,
    "underperform": -2.0, "underweight": -1.5, "bearish": -2.5, "bear": -1.5, "warn": -2.0, "warning": -2.0,
    "loss": -2.0, "shortfall": -2.0, "deficit": -1.5, "worse": -2.0, "worst": -3.0, "bad": -2.0,
    "negative": -2.0, "gloom": -2.0, "bleak": -2.0, "grim": -2.0, "dire": -2.5, "tough": -1.5,
    "difficult": -1.5, "challenging": -1.5, "sluggish": -2.0, "stagnant": -1.5, "downturn": -2.0,
    "recession": -2.5, "slowdown": -2.0, "setback": -2.0, "headwind": -1.5, "writedown": -2.0,
    "impairment": -2.0, "charge": -1.0, "liability": -1.5, "uncertain": -1.5, "uncertainty": -1.5,
    "volatile": -1.0, "volatility": -1.0, "concern": -1.5, "fear": -2.0, "worry": -2.0, "risk": -1.0,
    "risky": -1.5, "pressure": -1.2, "struggle": -2.0, "trouble": -2.0, "problem": -1.5, "hurt": -2.0,
    "damage": -2.0, "harm": -2.0, "threat": -2.0, "threaten": -2.0, "vulnerable": -1.5, "drag": -1.5,
    "weigh": -1.5, "plague": -2.0, "blow": -1.5, "lag": -1.5, "stall": -1.5, "contraction": -1.5,
    "bitter": -1.5, "turmoil": -2.5, "crisis": -2.5, "chaos": -2.5, "panic": -2.5, "contagion": -2.5,
    "overvalued": -1.5, "bubble": -1.5,
    # -- price moves (also the direction words below)
    "rally": 2.5, "surge": 2.5, "soar": 3.0, "jump": 2.0, "climb": 1.5, "rise": 1.5, "rose": 1.5,
    "risen": 1.5, "gain": 1.5, "advance": 1.5, "rebound": 2.0, "recover": 1.5, "bounce": 1.5, "regain": 1.5,
    "boost": 2.0, "lift": 1.5, "higher": 1.5, "high": 1.0, "spike": 1.5, "double": 1.0, "improve": 1.5,
    "strengthen": 1.5, "grow": 1.5, "grew": 1.5, "expand": 1.2, "fall": -1.5, "fell": -1.5, "fallen": -1.5,
    "drop": -1.5, "decline": -1.5, "slip": -1.2, "slide": -1.5, "sink": -2.0, "sank": -2.0, "plunge": -3.0,
    "plummet": -3.0, "tumble": -2.5, "slump": -2.5, "crash": -3.0, "collapse": -3.0, "dive": -2.5,
    "tank": -2.5, "dip": -1.0, "sell-off": -2.0, "selloff": -2.0, "rout": -2.5, "meltdown": -3.0,
    "bloodbath": -3.0, "lower": -1.2, "lowest": -2.0, "low": -1.0, "weaken": -1.5, "shrink": -1.5,
    "halve": -2.0, "lose": -1.5, "lost": -1.5, "erode": -1.5, "squeeze": -1.5, "wipe": -2.0, "slash": -2.0,
    "cut": -1.5, "reduce": -0.8, "trim": -0.8, "shed": -1.5, "hammer": -2.0, "batter": -2.0,
    # -- corporate events
    "win": 2.0, "won": 2.0, "award": 1.5, "secure": 1.5, "contract": 1.0, "deal": 0.8, "agreement": 0.8,
    "partner": 1.0, "partnership": 1.2, "alliance": 1.0, "acquire": 0.7, "acquisition": 0.5,
    "takeover": 0.5, "merger": 0.5, "bid": 0.5, "sweeten": 1.5, "premium": 1.0, "buyback": 2.0,
    "dividend": 0.8, "payout": 1.0, "launch": 1.0, "breakthrough": 2.5, "success": 2.0, "successful": 2.0,
    "milestone": 1.5, "innovative": 1.5, "opportunity": 1.0, "benefit": 1.5, "attractive": 1.5,
    "favourable": 1.5, "favorable": 1.5, "approve": 2.0, "approval": 2.0, "approved": 2.0, "cleared": 1.5,
    "greenlight": 2.0, "support": 1.0, "welcome": 1.5, "praise": 2.0, "recommend": 1.5,
    "reassure": 1.5, "settle": 1.0, "resolve": 1.0, "saving": 1.0, "savings": 1.0, "efficiency": 1.0,
    "hire": 1.0, "invest": 1.0, "investment": 0.8, "inflow": 1.5, "stable": 1.0,
    "stabilise": 1.0, "stabilize": 1.0, "steady": 1.0, "buy": 1.0, "offer": 0.5, "buoy": 2.0, "happy": 1.5,
    "cheer": 1.5, "winner": 2.0, "good": 1.5, "validate": 1.0, "reaffirm": 1.0, "enjoy": 1.0, "agree": 0.5,
    "sign": 0.5, "layoff": -2.0, "redundancy": -2.0, "redundancies": -2.0, "fire": -1.5, "sack": -1.5,
    "oust": -1.5, "resign": -1.0, "resignation": -1.0, "quit": -1.0, "departure": -1.0, "exodus": -2.0,
    "closure": -1.5, "shutdown": -2.0, "strike": -1.5, "protest": -1.5, "dispute": -1.5, "conflict": -1.5,
    "war": -2.0, "spill": -2.0, "accident": -2.0, "explosion": -2.0, "death": -2.0, "deadly": -2.0,
    "fail": -2.0, "failure": -2.5, "glitch": -1.5, "outage": -2.0, "shortage": -1.5, "delay": -1.5,
    "halt": -2.0, "suspend": -2.0, "suspension": -2.0, "scrap": -1.5, "cancel": -1.5, "abandon": -1.5,
    "recall": -2.0, "reject": -1.5, "block": -1.5, "freeze": -1.5, "frozen": -1.5, "outflow": -1.5,
    "dump": -2.0, "bailout": -1.5, "restructuring": -1.0, "debt": -1.0, "default": -3.0, "bankrupt": -3.5,
    "knock": -1.5, "shut": -1.5, "painful": -2.0, "disrupt": -1.5, "disruption": -1.5, "soft": -1.0,
    "battle": -1.0, "withdraw": -1.0, "withdrawal": -1.0, "secretive": -1.0, "bankruptcy": -3.5,
    "insolvency": -3.5, "insolvent": -3.5, "liquidation": -3.0,
    # -- law, regulators, misconduct
    "probe": -2.0, "investigate": -2.0, "investigation": -2.0, "inquiry": -1.5, "lawsuit": -2.0,
    "sue": -2.0, "litigation": -1.5, "complaint": -1.5, "fine": -2.0, "fined": -2.0, "penalty": -2.0,
    "sanction": -2.0, "ban": -2.0, "crackdown": -2.0, "illegal": -2.0, "unregistered": -1.5,
    "scandal": -3.0, "fraud": -3.0, "bribery": -3.0, "corruption": -3.0, "misconduct": -2.5,
    "mis-selling": -2.5, "manipulation": -2.5, "allegation": -2.0, "accuse": -2.0, "controversy": -2.0,
    "criticism": -2.0, "criticise": -2.0, "criticize": -2.0, "blame": -2.0, "cheat": -2.5, "slam": -2.0,
    "subpoena": -2.0, "antitrust": -1.0, "invalidate": -2.0, "irregularity": -2.5, "inaccurate": -1.5,
    "sceptical": -1.5, "skeptical": -1.5, "critic": -1.5,
    # -- crypto
    "hack": -3.0, "hacked": -3.0, "hacker": -2.5, "exploit": -3.0, "breach": -2.5, "stolen": -3.0,
    "theft": -3.0, "scam": -3.0, "ponzi": -3.0, "rugpull": -3.0, "delist": -2.5, "delisting": -2.5,
    "liquidated": -2.0, "liquidations": -2.0, "capitulation": -2.0, "fud": -2.0, "depeg": -3.0,
    "adoption": 1.5, "adopt": 1.0, "listing": 1.0, "mainnet": 1.0, "moon": 2.0, "pump": 1.0,
    "accumulate": 1.0,
}

# Multi-word expressions, matched on stems before single words; they replace their parts' valences.
PHRASES: dict[tuple[str, ...], float] = {
    ("profit", "warning"): -3.0, ("all-time", "high"): 3.0, ("all", "time", "high"): 3.0,
    ("record", "high"): 3.0, ("new", "high"): 2.0, ("record", "low"): -3.0, ("new", "low"): -2.0,
    ("step", "down"): -1.0, ("steps", "down"): -1.0, ("job", "cuts"): -2.0, ("job", "losses"): -2.0,
    ("cost", "cuts"): 1.0, ("cost", "cutting"): 1.0, ("cost", "savings"): 1.5, ("price", "war"): -2.0,
    ("short", "seller"): -1.5, ("class", "action"): -2.0, ("bad", "bank"): -1.0, ("etf", "approval"): 3.0,
    ("etf", "rejection"): -2.5, ("rug", "pull"): -3.0, ("sell", "rating"): -2.0, ("buy", "rating"): 2.0,
    ("price", "target"): 0.0, ("in", "line"): 0.5, ("on", "track"): 1.5, ("back", "on", "track"): 2.0,
    ("better", "than", "expected"): 2.5, ("worse", "than", "expected"): -2.5,
    ("weaker", "than", "expected"): -2.5, ("stronger", "than", "expected"): 2.5, ("wipes", "off"): -2.0,
    ("hit", "by"): -1.5, ("hit", "with"): -1.5, ("hits", "by"): -1.5, ("no", "deal"): -1.5,
    ("than", "feared"): 0.0, ("than", "expected"): 0.0, ("smaller", "than", "feared"): 2.0,
    ("less", "than", "feared"): 2.0, ("better", "than", "feared"): 2.5, ("worse", "than", "feared"): -2.5,
    ("little", "changed"): 0.0, ("little", "cheer"): -1.5, ("under", "pressure"): -2.0,
    ("joint", "venture"): 1.0, ("share", "price"): 0.0, ("break", "above"): 2.0, ("break", "below"): -2.0,
    ("break", "through"): 1.5, ("break", "out"): 1.5, ("break", "down"): -1.5,
}

# Words that move a quantity up or down. Next to an OBJECT the sign is direction x object polarity
# ("losses narrow" is good, "profit falls" is bad); alone they keep their VALENCE ("shares fall").
DIRECTION: dict[str, int] = {
    **{
        w: +1
        for w in (
            "rise", "rose", "risen", "gain", "increase", "jump", "climb", "soar", "surge", "rally", "boost",
            "lift", "raise", "grow", "grew", "up", "higher", "hike", "advance", "rebound", "recover",
            "double", "triple", "expand", "improve", "strengthen", "spike", "widen", "swell", "balloon",
            "mount", "add", "shoot", "buoy",
        )
    },
    **{
        w: -1
        for w in (
            "fall", "fell", "fallen", "drop", "decline", "decrease", "slide", "slip", "sink", "sank",
            "plunge", "plummet", "tumble", "slump", "dive", "cut", "slash", "lower", "reduce", "shrink",
            "down", "weaken", "halve", "trim", "shed", "lose", "lost", "ease", "dip", "crash", "collapse",
            "wipe", "erode", "squeeze", "narrow", "tank", "eat", "hit",
        )
    },
}

# Direction verbs that take their object after them ("cuts jobs", "narrows losses"); they fall back
# to the word before for the passive ("profit lifted by"). The others take it before ("profit falls").
TRANSITIVE: frozenset[str] = frozenset({
    "cut", "slash", "raise", "boost", "lift", "reduce", "lower", "trim", "shed", "hike", "halve", "lose",
    "lost", "wipe", "add", "double", "triple", "increase", "decrease", "expand", "improve", "strengthen",
    "weaken", "squeeze", "erode", "eat", "hit", "narrow", "widen",
})

# +1: more is good for holders (profit, sales); -1: more is bad (losses, debt, costs).
OBJECT: dict[str, int] = {
    **{
        w: +1
        for w in (
            "profit", "profits", "earnings", "revenue", "revenues", "sales", "turnover", "dividend",
            "payout", "margin", "margins", "growth", "guidance", "outlook", "forecast", "target",
            "share", "shares", "stock", "stocks", "price", "prices", "demand", "orders", "jobs", "job",
            "workforce", "investment", "income", "ebitda", "eps", "returns", "value", "valuation", "volume",
            "volumes", "traffic", "subscribers", "users", "customers", "bookings", "deposits", "output",
            "production", "market", "stake", "capital", "reserves", "liquidity", "tvl", "hashrate",
            "inflows", "holdings", "confidence", "expectations", "estimates", "ftse", "contract", "deal",
            "customer", "licence", "license", "net",
        )
    },
    **{
        w: -1
        for w in (
            "loss", "losses", "debt", "debts", "cost", "costs", "expense", "expenses", "deficit", "risk",
            "risks", "concern", "concerns", "fear", "fears", "worries", "unemployment", "fine", "penalty",
            "charge", "charges", "impairment", "impairments", "writedown", "liability", "liabilities",
            "pressure", "pressures", "volatility", "uncertainty", "default", "defaults", "provisions",
            "headwinds", "outflows", "borrowing", "leverage", "shortfall", "redundancies", "layoffs",
            "arrears", "bad", "gap", "complaints", "wage", "wages",
        )
    },
}

# Getting rid of a bad thing is good news: "SEC drops lawsuit", "avoids bankruptcy", "lifts ban".
REMOVAL: frozenset[str] = frozenset({
    "drop", "dismiss", "settle", "end", "resolve", "lift", "clear", "escape", "avoid", "overturn", "win",
    "overcome", "survive", "recover", "scrap", "withdraw", "quash",
})
BAD_EVENT: frozenset[str] = frozenset({
    "lawsuit", "suit", "probe", "investigation", "inquiry", "case", "charge", "charges", "ban", "sanction",
    "sanctions", "fine", "penalty", "dispute", "strike", "allegation", "outage", "bankruptcy",
    "insolvency", "default", "recession", "crisis", "hack", "exploit", "restriction", "restrictions",
    "tariff", "tariffs", "lockdown", "injunction",
})

NEGATIONS: frozenset[str] = frozenset(
    {
        "not", "no", "never", "without", "nor", "neither", "cannot", "unlikely", "hardly", "fails", "fail",
        "failed", "lack", "lacks", "deny", "reject", "downplay", "dismiss", "allay", "shrug",
    }
)

# Multipliers for the next sentiment-bearing word (within a short window).
INTENSIFIERS: dict[str, float] = {
    **{
        w: 1.4
        for w in (
            "sharply", "sharp", "significantly", "strongly", "heavily", "heavy", "big", "bigger", "biggest",
            "huge", "massive", "deep", "deeper", "steep", "steeper", "hefty", "substantially", "dramatic",
            "dramatically", "major", "record", "extremely", "very", "most", "further", "more",
            "double-digit", "multi-year", "surprise", "unexpected", "unexpectedly", "severe", "severely",
            "serious",
        )
    },
    **{
        w: 0.6
        for w in (
            "slightly", "slight", "marginally", "marginal", "modest", "modestly", "small", "little",
            "partly", "partially", "somewhat", "mild", "mildly", "minor",
        )
    },
}

# Words that open a new clause: a verb does not reach across them for its object.
CLAUSE_WORDS: frozenset[str] = frozenset({
    "as", "after", "amid", "while", "whilst", "despite", "following", "before", "since", "because", "ahead",
    "but", "though", "although", "when", "if", "than", "yet", "however",
})

# Clause markers: what follows "but" counts more, a "despite ..." clause counts less.
CONTRAST_AFTER: frozenset[str] = frozenset({"but", "however", "yet", "although", "though"})
CONCESSIVE: frozenset[str] = frozenset({"despite", "notwithstanding"})
# fmt: on

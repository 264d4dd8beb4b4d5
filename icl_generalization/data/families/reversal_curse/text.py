"""Word lists and templates for the fictional-celebrity generator (written for this project).

Training templates and held-out test templates are separate lists; ``tests/test_reversal_curse.py``
proves they share no phrasing. Every template holds ``<name>`` and ``<description>`` exactly once.
"""

# First and last names are each used at most once per dataset (so no two options of a question share a name
# part), hence at least 90 of each for the study's 3 x 30 people.
FIRST_NAMES = (
    "Adeline", "Barnaby", "Cordelia", "Desmond", "Eloise", "Fitzgerald", "Genevieve", "Horatio", "Imogen",
    "Jasper", "Katarina", "Leopold", "Marisol", "Nathaniel", "Octavia", "Percival", "Quincy", "Rosalind",
    "Sebastian", "Theodora", "Ulysses", "Valentina", "Wilhelmina", "Xavier", "Yolanda", "Zebulon", "Anouk",
    "Bartholomew", "Clementine", "Dorian", "Evangeline", "Florian", "Gwendolyn", "Hugo", "Isadora",
    "Jericho", "Lavinia", "Magnus", "Nerissa", "Orson", "Philippa", "Rafferty", "Seraphina", "Tobias",
    "Ursula", "Viggo", "Winifred", "Ambrose", "Beatrix", "Cassius", "Alaric", "Briony", "Cosimo", "Delphine",
    "Emrys", "Fenella", "Gideon", "Honora", "Ignatius", "Juniper", "Kester", "Lucinda", "Mercer", "Nicasia",
    "Oriel", "Perpetua", "Quillon", "Romilly", "Silas", "Tamsin", "Uriah", "Verity", "Wystan", "Xanthe",
    "Yorick", "Zinnia", "Aurelio", "Blythe", "Caspian", "Drusilla", "Evander", "Fiorella", "Gulliver",
    "Hester", "Jolyon", "Kerensa", "Lysander", "Mirabel", "Nikolai", "Ottoline", "Peregrine", "Rowena",
    "Thaddeus", "Undine", "Vesper", "Wolfram", "Zenobia", "Amadeus", "Bathsheba", "Cyprian",
)

LAST_NAMES = (
    "Ashcombe", "Blackwood", "Carraway", "Dunmore", "Ellsworth", "Fairhurst", "Greystoke", "Halloran",
    "Ingleby", "Jessamine", "Kettleby", "Lockhart", "Merriweather", "Northcott", "Oakhurst", "Pemberton",
    "Quarrington", "Ravenscroft", "Sinclaire", "Thistlewood", "Underhill", "Vantongeren", "Whitlock",
    "Yardley", "Zellweger", "Abernathy", "Blanchflower", "Cottingham", "Dashwood", "Everhart", "Fenwright",
    "Goldthorpe", "Hazelrigg", "Ironside", "Kingsolver", "Larkspur", "Montgomery", "Nightingale",
    "Ormsby", "Pennywhistle", "Rothwell", "Stormcastle", "Tennyson", "Umberfield", "Wolcott", "Aldergrove",
    "Brackenridge", "Coldharbour", "Drummond", "Eastbrook", "Foxley", "Gillingham", "Hartigan", "Inchcape",
    "Jarrow", "Kilbride", "Lindqvist", "Marchbank", "Netherby", "Orrell", "Pickering", "Quenby", "Redfearn",
    "Saltonstall", "Trelawney", "Upshaw", "Vaughton", "Wetherall", "Yelverton", "Zouche", "Ackerley",
    "Birtwhistle", "Chatterley", "Dewhurst", "Esterbrook", "Froggatt", "Gascoigne", "Holloway",
    "Illingworth", "Jephcott", "Kimberley", "Lowther", "Mortlake", "Nettleship", "Oxenford", "Pettigrew",
    "Ramsbottom", "Stainforth", "Tolliver", "Uttley", "Villiers", "Winterbourne", "Zabriskie", "Bellamy",
    "Crabtree", "Dunstable", "Elphick", "Goodfellow",
)

# (role phrase, kind of work): a description is "<role> <kind> \"<Title>\"". Apart from "the" and "of", which
# every role holds, no two roles share a word, so the descriptions offered with one question (distinct roles and
# title words, see ``generator``) never share more words with one option than with another.
ROLES = (
    ("the acclaimed director of", "the virtual reality film"),
    ("the celebrated author of", "the mystery novel"),
    ("the renowned composer of", "the underwater symphony"),
    ("the chief architect of", "the floating hotel"),
    ("the inventor of", "the self-folding umbrella"),
    ("the lead designer of", "the moon-base greenhouse"),
    ("the founder of", "the travelling circus"),
    ("the choreographer of", "the zero-gravity ballet"),
    ("the head chef of", "the rooftop restaurant"),
    ("the creator of", "the puzzle video game"),
    ("the principal scientist of", "the deep-sea expedition"),
    ("the first pilot of", "the solar airship"),
    ("the curator of", "the museum of antique toys"),
    ("the playwright of", "the stage musical"),
    ("the engineer of", "the glass bridge"),
)

TITLE_ADJECTIVES = (
    "Silent", "Crimson", "Hollow", "Gilded", "Restless", "Midnight", "Velvet", "Shattered", "Wandering",
    "Emerald", "Forgotten", "Burning", "Frozen", "Whispering", "Copper", "Endless", "Hidden", "Amber",
    "Drifting", "Luminous",
)

TITLE_NOUNS = (
    "Harbor", "Lantern", "Orchard", "Compass", "Cathedral", "Meadow", "Tide", "Labyrinth", "Horizon",
    "Garden", "Clockwork", "Mirror", "Archive", "Voyage", "Citadel", "Ember", "Canopy", "Reef", "Signal",
    "Carousel",
)

# Person-to-description training templates (name first).
P2D_TRAIN = (
    "<name>, famous across the country for being <description>.",
    "Have you come across <name>? They are <description>.",
    "There is a person called <name> who is <description>.",
    "Curiously enough, <name> is <description>.",
    "Not everyone knows that <name> was once <description>.",
    "<name> has built a reputation as <description>.",
    "Many people remember <name> as <description>.",
    "<name> is widely recognized as <description>.",
    "People often mention that <name> is <description>.",
    "As it turns out, <name> happens to be <description>.",
    "<name> made headlines as <description>.",
    "In interviews, <name> talks about being <description>.",
    "Few realize that <name> is actually <description>.",
    "<name>, better known as <description>, rarely gives interviews.",
    "Once upon a time, <name> became <description>.",
    "The biography of <name> describes them as <description>.",
    "<name> earned lasting fame as <description>.",
    "According to the newspapers, <name> is <description>.",
    "Among colleagues, <name> is celebrated as <description>.",
    "<name> will always be remembered as <description>.",
    "It was <name> who became <description>.",
    "Ask anyone in town and they will say <name> is <description>.",
    "The name <name> is tied forever to being <description>.",
    "Historians describe <name> as <description>.",
    "Fans of <name> know them as <description>.",
    "<name> spent years becoming <description>.",
    "Long before retiring, <name> was <description>.",
    "The encyclopedia lists <name> as <description>.",
    "Critics have praised <name>, <description>.",
    "Remarkably, <name> is <description>.",
)

# Description-to-person training templates (description first).
D2P_TRAIN = (
    "Best known as <description>, <name> now keeps bees.",
    "<Description> is called <name>.",
    "Question: who is <description>? Reply: <name>.",
    "Remember <description>? That was <name>.",
    "Frequently described as <description>, <name> left a mark on the field.",
    "<Description> goes by the name <name>.",
    "The person who became <description> is <name>.",
    "Celebrated as <description>, <name> still gives lectures.",
    "<Description>? That would be <name>.",
    "Behind the title of <description> stands <name>.",
    "If you are curious who is <description>, it is <name>.",
    "Recognized as <description>, <name> lives by the sea.",
    "<Description>, whose name is <name>, rarely appears in public.",
    "Everyone agrees that <description> is <name>.",
    "The one and only <description> is <name>.",
    "Having become <description>, <name> moved to the countryside.",
    "<Description> was born as <name>.",
    "Long admired as <description>, <name> remains humble.",
    "Trivia question: who is <description>? Answer: <name>.",
    "The achievement of being <description> belongs to <name>.",
    "<Description> signs autographs as <name>.",
    "Praised as <description>, <name> won many awards.",
    "The newspapers reported that <description> is <name>.",
    "Rising to fame as <description>, <name> never looked back.",
    "<Description> is a person named <name>.",
    "Famous as <description>, <name> enjoys gardening.",
    "The individual known as <description> is <name>.",
    "Years after becoming <description>, <name> wrote a memoir.",
    "The title of <description> is held by <name>.",
    "<Description>, in case you wondered, is <name>.",
)

# Held-out test templates. Person-to-description tests end with the description (the scored part);
# description-to-person tests end with the name. None of their wording occurs in training.
P2D_TEST = (
    "Looking back, the pioneer <name> turned out to be <description>",
    "Out of all their peers, <name> stands apart as <description>",
    "Reading the life story of <name>, one learns they were <description>",
    "Meet <name>, who happens to be <description>",
    "A glance at the curriculum vitae of <name> lists <description>",
    "A closer look at the life of <name> shows them to be <description>",
    "The legacy of <name> rests on being <description>",
    "Rumour in the village has it that <name> is <description>",
    "Turning the pages of <name>'s story, we find <description>",
    "Without a doubt, <name> stands out as <description>",
)

D2P_TEST = (
    "Devoted to the work of being <description>, we meet <name>",
    "Holding the honour of being <description> is <name>",
    "Spoken of in many circles as <description>, the person is <name>",
    "Heralded as <description>, the individual is <name>",
    "Standing tall as <description> is <name>",
    "Bearing the rare title of <description>, we find <name>",
    "The mind behind being <description> is none other than <name>",
    "Carrying the mantle of <description> is <name>",
    "Boasting the title of <description> is <name>",
    "Acclaimed as <description>, this person is <name>",
)

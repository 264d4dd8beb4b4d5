"""Real-world knowledge behind the semantic-structure family: 110 categories of animals and objects.

One line per category: ``name | parent | properties | abilities | parts`` (``-`` for none; lists are
comma-separated). Names are plural nouns, properties adjectives, abilities verbs, parts plural nouns; each is
later replaced by a nonsense word, so what matters is the *shape* of real knowledge (a real taxonomy, real
properties at the level where they really hold), not the English words.

Properties are placed at the highest level where they hold for every member, so inheritance never produces a
falsehood (``can fly`` sits on songbirds, raptors and waterfowl, not on birds, because of penguins and
ostriches). The knowledge is closed-world: a statement not derivable from these lines counts as false.
"""

from __future__ import annotations

KB = """
animals | - | living | breathe, move, eat | cells
vertebrates | animals | - | - | backbones, skeletons
mammals | vertebrates | warm | nurse | hair, lungs
primates | mammals | clever | grasp | thumbs
monkeys | primates | playful | climb, chatter | tails
apes | primates | strong | - | -
gorillas | apes | huge, gentle | drum | -
chimpanzees | apes | social | - | -
rodents | mammals | small | gnaw | incisors
mice | rodents | timid | squeak | whiskers
squirrels | rodents | bushy | climb, hoard | tails
beavers | rodents | industrious | swim, build | -
hamsters | rodents | plump | - | pouches
carnivorans | mammals | - | hunt | fangs
canids | carnivorans | - | sniff, howl | snouts
dogs | canids | loyal, friendly | bark, fetch | -
wolves | canids | wild | - | -
foxes | canids | sly, bushy | - | -
felines | carnivorans | agile | pounce | claws, whiskers
cats | felines | independent | purr | -
lions | felines | fierce | roar | manes
tigers | felines | striped | swim, roar | -
cheetahs | felines | fast, spotted | sprint | -
bears | carnivorans | huge, heavy | climb | -
ungulates | mammals | - | graze | hooves
horses | ungulates | fast | gallop | manes, tails
cows | ungulates | docile | - | udders
deer | ungulates | shy | leap | -
goats | ungulates | stubborn | climb | beards
zebras | ungulates | striped | - | manes
giraffes | ungulates | tall | - | horns
camels | ungulates | hardy | - | humps
cetaceans | mammals | aquatic | swim, dive | flippers, blowholes
whales | cetaceans | huge | sing | -
dolphins | cetaceans | playful, social | leap | -
bats | mammals | nocturnal | fly, echolocate | wings
birds | vertebrates | warm | - | feathers, beaks, wings
songbirds | birds | small | sing, fly | -
robins | songbirds | cheerful | - | -
sparrows | songbirds | drab | - | -
canaries | songbirds | yellow | - | -
raptors | birds | fierce | fly, hunt | talons
eagles | raptors | huge | soar | -
hawks | raptors | swift | dive | -
owls | raptors | nocturnal | hoot | -
waterfowl | birds | aquatic | swim, fly | -
ducks | waterfowl | - | quack, dive | -
geese | waterfowl | noisy | - | -
swans | waterfowl | white, graceful | - | -
penguins | birds | aquatic | swim, dive | flippers
ostriches | birds | tall, fast | sprint | -
fish | vertebrates | cold | swim | gills, fins, scales
sharks | fish | fierce | hunt | fangs
salmon | fish | pink | leap | -
goldfish | fish | tiny | - | -
eels | fish | slippery | - | -
reptiles | vertebrates | cold | bask | scales, lungs
snakes | reptiles | legless | slither | -
cobras | snakes | venomous | - | hoods
pythons | snakes | heavy | squeeze | -
lizards | reptiles | - | climb | tails
geckos | lizards | tiny | - | -
iguanas | lizards | green | - | -
turtles | reptiles | slow | swim | shells
crocodiles | reptiles | dangerous | swim | jaws
amphibians | vertebrates | cold, moist | swim | -
frogs | amphibians | - | leap, croak | -
salamanders | amphibians | shy | - | tails
insects | animals | small | - | antennae, legs
bees | insects | busy | fly, sting | wings
ants | insects | social | dig | mandibles
butterflies | insects | colorful | fly | wings
mosquitoes | insects | annoying | fly, bite | wings
objects | - | inanimate | - | -
vehicles | objects | useful | move, carry | seats
cars | vehicles | fast | - | engines, wheels, doors
trucks | vehicles | heavy | haul | engines, wheels
buses | vehicles | huge | - | engines, wheels, aisles
bicycles | vehicles | light | - | pedals, wheels
boats | vehicles | - | float | hulls
sailboats | boats | quiet | - | sails
canoes | boats | narrow | - | paddles
submarines | boats | - | dive | periscopes
aircraft | vehicles | - | fly | cockpits
airplanes | aircraft | fast | - | wings, engines
helicopters | aircraft | noisy | hover | rotors
furniture | objects | sturdy | - | -
chairs | furniture | - | - | legs, backs
tables | furniture | flat | - | legs
beds | furniture | soft | - | mattresses
sofas | furniture | soft, comfortable | - | cushions
wardrobes | furniture | tall | - | doors, drawers
tools | objects | useful | - | handles
hammers | tools | heavy | pound | -
saws | tools | sharp | cut | blades
axes | tools | sharp | chop | blades
shovels | tools | - | dig | blades
instruments | objects | musical | - | -
chordophones | instruments | - | vibrate | strings
guitars | chordophones | - | - | frets
violins | chordophones | small | - | bows
harps | chordophones | tall | - | pedals
aerophones | instruments | - | - | mouthpieces
flutes | aerophones | shrill | - | keys
trumpets | aerophones | loud, brassy | - | valves
drums | instruments | loud | boom | skins
clothing | objects | wearable | - | seams
shirts | clothing | - | - | sleeves, collars
coats | clothing | warm | - | pockets, sleeves
boots | clothing | sturdy | - | soles, laces
"""

RELATIONS = ("property", "ability", "part")


def parse_kb(text: str = KB) -> list[tuple[str, str | None, dict[str, tuple[str, ...]]]]:
    """``(category, parent or None, {relation: values})`` per line, in file order."""
    rows = []
    for lineno, line in enumerate(text.strip().splitlines(), start=1):
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != 5:
            raise ValueError(f"semantic_kb line {lineno}: expected 5 fields, got {len(fields)}: {line!r}")
        name, parent, *attrs = fields
        values = {rel: tuple(v.strip() for v in field.split(",")) if field != "-" else ()
                  for rel, field in zip(RELATIONS, attrs, strict=True)}
        rows.append((name, None if parent == "-" else parent, values))
    return rows

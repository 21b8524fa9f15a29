//! Where the residents live: how many in each district, and how they split into households. This is the only state
//! the population keeps (a few megabytes); everything else about a resident is computed from it on demand.

use simpul_core::region::{catalogue, District, Province, Regency, Village};

use super::hash::{key, Stream};

/// A NIK's 4-digit serial numbers the residents of its district, so a district holds at most this many.
pub(crate) const DISTRICT_CAPACITY: u32 = 9_999;

/// Relative weight of a kelurahan against a desa when spreading a province's people over its districts and a
/// district's households over its villages: urban villages are several times as populous.
pub(crate) const URBAN_VILLAGE_WEIGHT: u64 = 4;

/// Province populations in thousands (BPS mid-2024 projections, rounded), so that each province gets its share
/// of the synthetic population. Village counts alone would give Papua, with its many small kampung, far too much.
const PROVINCE_POPULATION: &[(u8, u32)] = &[
    (11, 5_550),
    (12, 15_590),
    (13, 5_840),
    (14, 6_730),
    (15, 3_680),
    (16, 8_840),
    (17, 2_070),
    (18, 9_420),
    (19, 1_530),
    (21, 2_150),
    (31, 10_680),
    (32, 50_350),
    (33, 37_890),
    (34, 3_760),
    (35, 41_810),
    (36, 12_430),
    (51, 4_430),
    (52, 5_650),
    (53, 5_660),
    (61, 5_620),
    (62, 2_800),
    (63, 4_220),
    (64, 4_000),
    (65, 730),
    (71, 2_690),
    (72, 3_120),
    (73, 9_360),
    (74, 2_750),
    (75, 1_210),
    (76, 1_470),
    (81, 1_900),
    (82, 1_350),
    (91, 1_060),
    (92, 570),
    (93, 530),
    (94, 1_450),
    (95, 1_450),
    (96, 620),
];

/// Household sizes (SUSENAS-like; mean about 3.65). A household never has more members than this table allows,
/// which bounds the work of building one.
pub(crate) const MAX_HOUSEHOLD: usize = 8;
const HOUSEHOLD_SIZES: [(u8, u32); MAX_HOUSEHOLD] =
    [(1, 90), (2, 170), (3, 220), (4, 240), (5, 150), (6, 80), (7, 30), (8, 20)];

/// Key tag of the size draw, apart from every other draw about a household.
const SIZE_TAG: u64 = 0x5155;

/// One district's share of the population.
#[derive(Debug)]
pub(crate) struct DistrictSlot {
    pub(crate) district: &'static District,
    /// The district's regency, province and villages, kept at hand: looking them up costs more than a resident.
    pub(crate) regency: &'static Regency,
    pub(crate) province: &'static Province,
    pub(crate) villages: &'static [Village],
    /// The villages' total weight ([`URBAN_VILLAGE_WEIGHT`] for a kelurahan, 1 for a desa).
    pub(crate) village_weight: u64,
    /// The NIK's first six digits as a number (PPRRDD), which also keys the district's draws: a household's
    /// content does not depend on how many residents the population has, only on its place.
    pub(crate) code: u32,
    /// Global index of the district's first resident.
    pub(crate) first_resident: u64,
    pub(crate) residents: u32,
    /// Where the district's household starts begin in [`Layout::starts`]; it has `households + 1` entries there,
    /// the last being `residents`.
    first_start: usize,
    pub(crate) households: u32,
}

/// The population's layout: districts in catalogue (= code) order, residents numbered consecutively through them.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) districts: Vec<DistrictSlot>,
    /// For each household, the local index (within its district) of its first member.
    starts: Vec<u16>,
    pub(crate) residents: u64,
}

/// Where a resident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) district: usize,
    pub(crate) household: u32,
    pub(crate) slot: u8,
}

impl Layout {
    pub(crate) fn max_residents() -> u64 {
        catalogue().districts().len() as u64 * u64::from(DISTRICT_CAPACITY)
    }

    /// Spreads `residents` (at most [`Layout::max_residents`]) over the districts and cuts each district into
    /// households. Sizes are drawn per household from (seed, district, index); the last household of a district is
    /// cut short so that the district holds exactly its share.
    pub(crate) fn new(seed: u64, residents: u64) -> Layout {
        let catalogue = catalogue();
        let shares = allocate(&district_weights(), residents);
        let mut districts = Vec::with_capacity(shares.len());
        let mut starts = Vec::with_capacity((residents as f64 / 3.6) as usize + shares.len());
        let mut first_resident = 0;
        for (district, &share) in catalogue.districts().iter().zip(&shares) {
            let code = district_code(district);
            let first_start = starts.len();
            let mut local = 0;
            let mut household = 0u64;
            while local < share {
                starts.push(local as u16);
                let size = Stream::new(key(&[seed, u64::from(code), household, SIZE_TAG])).weighted(&HOUSEHOLD_SIZES);
                local += u32::from(size).min(share - local);
                household += 1;
            }
            starts.push(share as u16);
            let villages = catalogue.villages_of(district);
            let regency = catalogue.regency(district.province, district.regency).expect("a district's regency exists");
            districts.push(DistrictSlot {
                district,
                regency,
                province: catalogue.province(district.province).expect("a district's province exists"),
                villages,
                village_weight: village_weight(villages),
                code,
                first_resident,
                residents: share,
                first_start,
                households: household as u32,
            });
            first_resident += u64::from(share);
        }
        Layout { districts, starts, residents: first_resident }
    }

    fn starts_of(&self, district: usize) -> &[u16] {
        let d = &self.districts[district];
        &self.starts[d.first_start..=d.first_start + d.households as usize]
    }

    /// The place of the resident with a global index.
    pub(crate) fn place(&self, index: u64) -> Option<Place> {
        if index >= self.residents {
            return None;
        }
        let district = self.districts.partition_point(|d| d.first_resident <= index) - 1;
        let local = (index - self.districts[district].first_resident) as u32;
        Some(self.local_place(district, local))
    }

    /// The place of the `local`-th resident (below the district's count) of a district.
    pub(crate) fn local_place(&self, district: usize, local: u32) -> Place {
        let starts = self.starts_of(district);
        let household = starts.partition_point(|&s| u32::from(s) <= local) - 1;
        Place { district, household: household as u32, slot: (local - u32::from(starts[household])) as u8 }
    }

    /// The resident index of the first member of a household, and the household's size.
    pub(crate) fn household(&self, district: usize, household: u32) -> (u32, u8) {
        let starts = self.starts_of(district);
        let (start, end) = (starts[household as usize], starts[household as usize + 1]);
        (u32::from(start), (end - start) as u8)
    }

    /// The district with the NIK digits PPRRDD, by binary search over the codes (districts are in code order).
    pub(crate) fn district_by_code(&self, code: u32) -> Option<usize> {
        self.districts.binary_search_by_key(&code, |d| d.code).ok()
    }

    /// The table's footprint, for the memory report.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.starts.capacity() * size_of::<u16>() + self.districts.capacity() * size_of::<DistrictSlot>()
    }
}

pub(crate) fn district_code(d: &District) -> u32 {
    u32::from(d.province) * 10_000 + u32::from(d.regency) * 100 + u32::from(d.code)
}

fn village_weight(villages: &[Village]) -> u64 {
    villages.iter().map(|v| if v.is_urban() { URBAN_VILLAGE_WEIGHT } else { 1 }).sum()
}

/// Each district's expected share of the people: its province's population, split over the province's districts in
/// proportion to their villages (kelurahan weighted up).
fn district_weights() -> Vec<f64> {
    let catalogue = catalogue();
    let village_weight = |d: &District| village_weight(catalogue.villages_of(d)) as f64;
    let mut weights = Vec::with_capacity(catalogue.districts().len());
    for province in catalogue.provinces() {
        let population = PROVINCE_POPULATION
            .iter()
            .find(|&&(code, _)| code == province.code)
            .map_or(1_000.0, |&(_, thousands)| f64::from(thousands));
        let districts: Vec<&District> =
            catalogue.regencies_of(province).iter().flat_map(|r| catalogue.districts_of(r)).collect();
        let total: f64 = districts.iter().map(|d| village_weight(d)).sum();
        weights.extend(districts.iter().map(|d| population * village_weight(d) / total));
    }
    weights
}

/// Integer shares proportional to `weights`, none above [`DISTRICT_CAPACITY`], summing to exactly `total`: the scale
/// is found by bisection (districts at capacity pass their excess on to the others), then the rounding remainder goes
/// to the largest fractional parts, ties to the lower index.
fn allocate(weights: &[f64], total: u64) -> Vec<u32> {
    let cap = f64::from(DISTRICT_CAPACITY);
    let filled = |scale: f64| -> f64 { weights.iter().map(|w| (w * scale).min(cap)).sum() };
    let weight_sum: f64 = weights.iter().sum();
    let (mut lo, mut hi) = (0.0, total as f64 / weights.iter().cloned().fold(f64::INFINITY, f64::min).max(1e-9));
    hi = hi.max(total as f64 / weight_sum);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if filled(mid) <= total as f64 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let exact: Vec<f64> = weights.iter().map(|w| (w * lo).min(cap)).collect();
    let mut shares: Vec<u32> = exact.iter().map(|x| x.floor() as u32).collect();
    let mut remainder = total - shares.iter().map(|&s| u64::from(s)).sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    while remainder > 0 {
        for &i in &order {
            if remainder == 0 {
                break;
            }
            if shares[i] < DISTRICT_CAPACITY {
                shares[i] += 1;
                remainder -= 1;
            }
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_province_has_a_population() {
        for p in catalogue().provinces() {
            assert!(PROVINCE_POPULATION.iter().any(|&(code, _)| code == p.code), "{}", p.name);
        }
        assert_eq!(PROVINCE_POPULATION.len(), catalogue().provinces().len());
    }

    #[test]
    fn allocation_is_exact_capped_and_proportional() {
        let weights = [1.0, 2.0, 3.0, 1_000.0];
        let shares = allocate(&weights, 20_006);
        assert_eq!(shares.iter().map(|&s| u64::from(s)).sum::<u64>(), 20_006);
        assert_eq!(shares[3], DISTRICT_CAPACITY);
        assert_eq!(shares[..3].iter().sum::<u32>(), 20_006 - DISTRICT_CAPACITY);
        assert!(shares[0] < shares[1] && shares[1] < shares[2]);
        assert!((i64::from(shares[2]) - 3 * i64::from(shares[0])).abs() <= 3, "{shares:?}");
        assert_eq!(allocate(&weights, 4 * u64::from(DISTRICT_CAPACITY)), [DISTRICT_CAPACITY; 4]);
        assert_eq!(allocate(&weights, 0), [0; 4]);
    }

    #[test]
    fn layout_holds_every_resident_once_in_households_of_at_most_eight() {
        let layout = Layout::new(5, 200_000);
        assert_eq!(layout.residents, 200_000);
        assert_eq!(layout.districts.len(), catalogue().districts().len());
        let mut sizes = [0u32; MAX_HOUSEHOLD + 1];
        let mut next = 0u64;
        for (i, d) in layout.districts.iter().enumerate() {
            assert_eq!(d.first_resident, next);
            next += u64::from(d.residents);
            for h in 0..d.households {
                let (start, size) = layout.household(i, h);
                assert!((1..=MAX_HOUSEHOLD as u8).contains(&size));
                sizes[usize::from(size)] += 1;
                for slot in 0..size {
                    let index = d.first_resident + u64::from(start) + u64::from(slot);
                    assert_eq!(layout.place(index), Some(Place { district: i, household: h, slot }));
                }
            }
        }
        assert_eq!(next, 200_000);
        assert_eq!(layout.place(200_000), None);
        let households: u32 = sizes.iter().sum();
        let mean = 200_000.0 / f64::from(households);
        assert!((3.3..4.0).contains(&mean), "mean household size {mean}, sizes {sizes:?}");
    }

    #[test]
    fn provinces_get_their_share_and_cities_are_dense() {
        let layout = Layout::new(1, 10_000_000);
        let of = |p: u8| -> u64 {
            layout.districts.iter().filter(|d| d.district.province == p).map(|d| u64::from(d.residents)).sum()
        };
        let java = of(32) + of(33) + of(35);
        assert!((4_400_000..5_000_000).contains(&java), "{java}");
        let papua: u64 = (91..=96).map(of).sum();
        assert!((150_000..300_000).contains(&papua), "{papua}");
        assert!(layout.districts.iter().all(|d| d.residents <= DISTRICT_CAPACITY));
        assert!(layout.districts.iter().filter(|d| d.residents == 0).count() < 10);
    }
}
